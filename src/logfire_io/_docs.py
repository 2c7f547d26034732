"""Docstring parts shared by many public functions, each written once.

Every public function has a complete docstring of its own (``help()`` shows every parameter, what it returns and
raises, and an example), but the four readers and the ten client methods share most of their parameters. Their
docstrings name the shared parts in braces, ``{query_parameters}``, and :func:`documented` fills them in, as
pandas' ``@doc`` decorator does: as a decorator in the client; for the readers, ``logfire_io/__init__`` applies it
once every module is loaded, so that the reader modules hold nothing for it but their docstrings.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["awaited", "documented"]

_T = TypeVar("_T")

_PARTS = {
    "client_parameters": """\
read_token
    A project read token; defaults to ``$LOGFIRE_READ_TOKEN``. Surrounding whitespace is stripped; a token with
    whitespace or control characters inside is refused before any request. Never logged, never shown in
    ``repr`` or errors, in any encoding.
base_url
    The API root; defaults to ``$LOGFIRE_BASE_URL``, then to the region named in the token. Any path prefix is
    kept (``https://proxy/logfire`` sends ``https://proxy/logfire/v2/query``).
timeout
    A number is the total seconds one request may take, from sending it to the last byte of its body (default
    300); single network waits within it are limited to 30 s, so a stalled connection is retried early. An
    ``httpx.Timeout`` sets httpx's per-phase limits instead, and the total stays at 300 s. Time the caller
    spends between streamed batches does not count.
api_version
    ``"auto"`` uses ``POST /v2/query`` and falls back to ``GET /v1/query`` once if v2 answers 404/405;
    ``"v1"``/``"v2"`` pin one.
retries
    Number of retries, or a :class:`~logfire_io.Retry` policy.
max_response_bytes
    Decompressed bytes one response may hold (default 1 GiB); a larger body raises
    :class:`~logfire_io.UnexpectedResponseError`.
max_compression_ratio
    Decompressed bytes per compressed byte past which a body over 64 MiB is taken for a decompression bomb
    (default 1,000; gzip itself cannot pass about 1,030).
**httpx_client_kwargs
    Passed to the httpx client (``transport=``, ``limits=``, ``verify=``, ``headers=``...).""",
    "client_raises": """\
ConfigurationError
    No read token, a token with whitespace or control characters inside, a token for an unknown region
    without ``base_url``, or an option that cannot work.""",
    "query_parameters": """\
sql
    The query, in Logfire's SQL (PostgreSQL-flavoured DataFusion).
min_timestamp, max_timestamp
    The time window on ``start_timestamp`` (``recorded_timestamp`` for metrics); naive datetimes are UTC.
    Without ``min_timestamp``, 2020-01-01 UTC is sent (the v2 API requires a lower bound).
limit
    Rows to return, 1 to 10,000; None leaves the service's default (100 on v2, 500 on v1).
timezone
    IANA zone the query runs in (v2 only).
environment
    ``deployment_environment`` values to keep (v2 only); ``""`` means rows without one.""",
    "query_raises": """\
ConfigurationError
    An argument cannot work (an empty query, a ``limit`` past 10,000, ``min_timestamp`` after
    ``max_timestamp``); raised before any request.
QueryExecutionError
    The SQL failed on the service (HTTP 400); the message quotes the service's reason.
QueryRequestError
    The service refused the request (HTTP 422), e.g. an unknown ``timezone``.
AuthenticationError
    The read token was refused (HTTP 401 or 403).
RateLimitError
    HTTP 429 without ``Retry-After`` (a quota, which retrying cannot fix), or the retries ran out.
UnexpectedResponseError
    Any other status, or a body refused as it was read: not the format asked for, invalid Arrow data, larger
    than ``max_response_bytes``, or inflating like a decompression bomb.
TransportError
    The service could not be reached after the retries, or one request took longer than ``timeout``.
IncompleteResponseError
    The body kept ending early (an Arrow stream without its end-of-stream marker), after the retries.""",
    "limit_parameter": """\
limit
    At most this many rows. Without it, every row: queries that can be split by time are read in slices past
    the 10,000-row cap; others raise :class:`~logfire_io.RowCapError` rather than return a short result.""",
    "json_columns_parameter": """\
json_columns
    ``"auto"`` decodes Logfire's JSON text columns (``attributes``, ...) into structs whose fields are the union
    over every row; None keeps text; a list picks columns; a dict gives explicit polars dtypes.""",
    "reader_parameters": """\
read_token
    A project read token; defaults to ``$LOGFIRE_READ_TOKEN``. Surrounding whitespace is stripped.
base_url
    The Query API root; defaults to ``$LOGFIRE_BASE_URL``, then to the token's region.
min_timestamp, max_timestamp
    The window ``[min_timestamp, max_timestamp)`` on ``start_timestamp`` (``recorded_timestamp`` for
    metrics). Naive datetimes are UTC. An open side is closed at the data's first/last row.
slices
    How to split the window: a number of slices, a slice width, or None to plan from a row histogram. Slices
    that come back full are halved and fetched again.
max_concurrency
    Requests in flight at once, 1 to 64 (default 4).
progress
    Show rows and slices done on stderr; by default only when stderr is a terminal.
timezone, environment
    Passed to the Query API (v2): the zone the query runs in, and ``deployment_environment`` values to keep.
client
    A :class:`~logfire_io.LogfireQueryClient` to use instead of making one (then ``read_token`` and
    ``base_url`` are ignored).""",
    "reader_raises": """\
ConfigurationError
    An argument or the environment cannot work (no read token, ``slices`` for a query that cannot be split,
    ``min_timestamp`` after ``max_timestamp``); raised before any request.
RowCapError
    A query that cannot be split by time returned the full 10,000 rows, so rows may be missing.
SliceError
    A slice still failed after the retries; nothing is returned, as the result would be incomplete.
TooDenseError
    More than 10,000 rows share one microsecond, so the window cannot be split further.
QueryHTTPError
    The service answered with an error (its subclasses as for :meth:`LogfireQueryClient.query_arrow`), or a
    body was refused.
TransportError, IncompleteResponseError
    The service could not be reached, or its answers kept breaking, after the retries.""",
}
_PARTS["read_parameters"] = "\n".join(
    [
        "sql\n    The query, in Logfire's SQL.",
        _PARTS["limit_parameter"],
        _PARTS["json_columns_parameter"],
        _PARTS["reader_parameters"],
    ]
)
_PLACEHOLDER = re.compile(r"^\{(\w+)\}$", re.MULTILINE)


def documented(obj: _T) -> _T:
    """``obj`` with the shared parts named in its docstring (a line ``{query_parameters}``) filled in."""

    def part(match: re.Match[str]) -> str:
        return _PARTS[match[1]]

    obj.__doc__ = _PLACEHOLDER.sub(part, inspect.cleandoc(obj.__doc__ or ""))
    return obj


def awaited(sync: Callable[..., object]) -> Callable[[_T], _T]:
    """Decorator: the docstring of ``sync`` for its asynchronous twin, whose own docstring adds its example.

    The async client's methods take the same parameters and raise the same errors as the sync ones; only how
    they are called differs, so only the example is written twice.
    """

    def decorate(obj: _T) -> _T:
        summary, _, rest = (sync.__doc__ or "").partition("\n")
        described = rest.split("\nExamples\n--------\n")[0]
        example = inspect.cleandoc(obj.__doc__ or "").partition("\n\n")[2]
        obj.__doc__ = f"{summary.rstrip('.')}; awaited.\n{described}\nExamples\n--------\n{example}"
        return obj

    return decorate
