"""Pydantic Logfire query results into polars, pandas and Arrow: fast, exact, testable offline."""

from logfire_io._client import AsyncLogfireQueryClient, LogfireQueryClient
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
from logfire_io._protocol import MAX_LIMIT, Retry

__all__ = [
    "MAX_LIMIT",
    "AsyncLogfireQueryClient",
    "AuthenticationError",
    "ConfigurationError",
    "IncompleteResponseError",
    "LogfireIOError",
    "LogfireQueryClient",
    "QueryExecutionError",
    "QueryHTTPError",
    "QueryRequestError",
    "RateLimitError",
    "Retry",
    "RowCapError",
    "TransportError",
    "UnexpectedResponseError",
]
