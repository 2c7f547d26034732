"""Pydantic Logfire query results into polars, pandas and Arrow: fast, exact, testable offline.

Importing this package also sets ``pl.read_logfire`` and ``pl.scan_logfire`` (plain attributes; for typed code
import them from :mod:`logfire_io.polars`).
"""

import polars as _pl
from logfire_io._client import VERSION as __version__  # noqa: F401 - public, by convention not in __all__
from logfire_io._client import AsyncLogfireQueryClient, LogfireQueryClient
from logfire_io._docs import documented
from logfire_io._exceptions import (
    AuthenticationError,
    ConfigurationError,
    IncompleteResponseError,
    LogfireIOError,
    QueryExecutionError,
    QueryHTTPError,
    QueryRequestError,
    RateLimitError,
    RowCapError,
    TransportError,
    UnexpectedResponseError,
)
from logfire_io._export import ExportResult, export
from logfire_io._json import JSONDecodeWarning
from logfire_io._plan import ReadPlan, plan
from logfire_io._protocol import MAX_LIMIT, Retry
from logfire_io._read import read_logfire_arrow
from logfire_io._slicing import Slice, SliceError, TooDenseError, plan_slices
from logfire_io.pandas import read_logfire_pandas
from logfire_io.polars import read_logfire, scan_logfire

__all__ = [
    "MAX_LIMIT",
    "AsyncLogfireQueryClient",
    "AuthenticationError",
    "ConfigurationError",
    "ExportResult",
    "IncompleteResponseError",
    "JSONDecodeWarning",
    "LogfireIOError",
    "LogfireQueryClient",
    "QueryExecutionError",
    "QueryHTTPError",
    "QueryRequestError",
    "RateLimitError",
    "ReadPlan",
    "Retry",
    "RowCapError",
    "Slice",
    "SliceError",
    "TooDenseError",
    "TransportError",
    "UnexpectedResponseError",
    "export",
    "plan",
    "plan_slices",
    "read_logfire",
    "read_logfire_arrow",
    "read_logfire_pandas",
    "scan_logfire",
]

for _reader in (read_logfire, scan_logfire, read_logfire_pandas, read_logfire_arrow):
    documented(_reader)  # the shared parameter descriptions, once every reader module is loaded
del _reader

_pl.read_logfire = read_logfire  # type: ignore[attr-defined]
_pl.scan_logfire = scan_logfire  # type: ignore[attr-defined]
