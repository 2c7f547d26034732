"""The Query API protocol as pure functions: no I/O, shared by the sync and async clients.

Base URL and token resolution, request bodies and parameters as the official SDK sends them, content
negotiation, mapping error responses to exceptions, and the retry policy.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import numpy as np
import orjson

from logfire_io._exceptions import (
    AuthenticationError,
    ConfigurationError,
    IncompleteResponseError,
    LogfireIOError,
    QueryExecutionError,
    QueryHTTPError,
    QueryRequestError,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
)

__all__ = [
    "ARROW_MEDIA_TYPE",
    "DEFAULT_TIMEOUT",
    "EARLIEST",
    "MAX_LIMIT",
    "ApiVersion",
    "Query",
    "Retry",
    "as_utc",
    "checked_window",
    "clamped",
    "error_from_response",
    "isoformat",
    "resolve_base_url",
    "resolve_read_token",
    "rows_result_from_v2",
    "rows_to_columns",
    "scrub",
]

MAX_LIMIT = 10_000
"""The most rows the Query API returns for one request."""
DEFAULT_TIMEOUT = httpx.Timeout(30.0)
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
"""Sent as ``min_timestamp`` when none is given: ``POST /v2/query`` requires one, and this is the default the
official SDK (4.35 to 4.41) sent. Logfire holds no data older than this."""

ApiVersion = Literal["auto", "v1", "v2"]
Format = Literal["json", "arrow", "csv"]
_MEDIA_TYPES: dict[Format, str] = {"json": "application/json", "arrow": ARROW_MEDIA_TYPE, "csv": "text/csv"}

_TOKEN_REGION = re.compile(r"^pylf_v[0-9]+_(?P<region>[a-z]+)_")
_REGION_URLS = {
    "us": "https://logfire-us.pydantic.dev",
    "eu": "https://logfire-eu.pydantic.dev",
    "stagingus": "https://logfire-us.pydantic.info",
    "stagingeu": "https://logfire-eu.pydantic.info",
}


def resolve_read_token(read_token: str | None) -> str:
    """The explicit token, else ``$LOGFIRE_READ_TOKEN``."""
    token = read_token or os.environ.get("LOGFIRE_READ_TOKEN")
    if not token:
        msg = (
            "no Logfire read token: pass `read_token=` or set the LOGFIRE_READ_TOKEN environment variable"
            "\n\nHint: create one under your project's Settings > Read tokens."
        )
        raise ConfigurationError(msg)
    return token


def resolve_base_url(base_url: str | None, read_token: str) -> str:
    """The explicit URL, else ``$LOGFIRE_BASE_URL``, else the region the token names.

    Tokens older than regions (no ``pylf_v1_<region>_`` prefix) belong to the US region, as the official SDK
    assumes; a token naming a region we do not know is an error rather than a guess that would send it elsewhere.
    """
    if base_url := base_url or os.environ.get("LOGFIRE_BASE_URL"):
        return base_url
    match = _TOKEN_REGION.match(read_token)
    if match is None:
        return _REGION_URLS["us"]
    region = match["region"]
    if region not in _REGION_URLS:
        msg = (
            f"the read token is for region {region!r}, which has no known Logfire URL; "
            "pass `base_url=` (or set LOGFIRE_BASE_URL), e.g. the URL of your self-hosted or local server"
        )
        raise ConfigurationError(msg)
    return _REGION_URLS[region]


def scrub(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced, for messages and logs.

    Strings shorter than 6 characters are not secrets worth mangling every message for (real tokens are ~50).
    """
    return text.replace(secret, "<read token>") if len(secret) >= 6 else text


def isoformat(value: datetime) -> str:
    """RFC 3339 as the official SDK sends it; naive datetimes are taken as UTC."""
    return as_utc(value).isoformat()


@dataclass(frozen=True)
class Query:
    """One validated query request, independent of protocol version.

    Raises ``ConfigurationError`` on construction when an argument cannot work.
    """

    sql: str
    min_timestamp: datetime | None = None
    max_timestamp: datetime | None = None
    limit: int | None = None
    timezone: str | None = None
    environment: str | list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            msg = f"`sql` must be a non-empty SQL query, got {self.sql!r}"
            raise ConfigurationError(msg)
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT
        ):
            msg = f"`limit` must be an integer from 1 to {MAX_LIMIT:,} (the Query API's cap), got {self.limit!r}"
            raise ConfigurationError(msg)
        low, high = checked_window(self.min_timestamp, self.max_timestamp)
        object.__setattr__(self, "min_timestamp", low)
        object.__setattr__(self, "max_timestamp", high)

    def v2_body(self) -> dict[str, Any]:
        """The ``POST /v2/query`` JSON body, keys in the official SDK's order."""
        body: dict[str, Any] = {"sql": self.sql, "explain": False, "include_schema": True}
        if self.limit is not None:
            body["limit"] = self.limit
        body["min_timestamp"] = isoformat(self.min_timestamp or EARLIEST)
        if self.max_timestamp is not None:
            body["max_timestamp"] = isoformat(self.max_timestamp)
        if self.timezone is not None:
            body["timezone"] = self.timezone
        if self.environment is not None:
            environment = self.environment
            body["deployment_environment"] = [environment] if isinstance(environment, str) else list(environment)
        return body

    def v1_params(self, *, rows: bool) -> dict[str, str]:
        """The ``GET /v1/query`` parameters (``timezone`` and ``environment`` do not exist there)."""
        if self.timezone is not None or self.environment is not None:
            msg = "`timezone` and `environment` need the v2 Query API; the server only speaks v1"
            raise ConfigurationError(msg)
        params = {"sql": self.sql}
        if rows:
            params["json_rows"] = "true"
        if self.limit is not None:
            params["limit"] = str(self.limit)
        if self.min_timestamp is not None:
            params["min_timestamp"] = isoformat(self.min_timestamp)
        if self.max_timestamp is not None:
            params["max_timestamp"] = isoformat(self.max_timestamp)
        return params


EARLIEST_BOUND = datetime(1678, 1, 1, tzinfo=UTC)
LATEST_BOUND = datetime(2262, 1, 1, tzinfo=UTC)
"""Windows must lie in ``[EARLIEST_BOUND, LATEST_BOUND]``: DataFusion's timestamp literals are nanoseconds."""
_ONE_US = timedelta(microseconds=1)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime on a whole microsecond, everywhere in logfire-io.

    Naive datetimes are UTC; other zones are converted exactly, so a window across a DST change covers the
    real elapsed time. A value between two microseconds (pandas' nanoseconds) moves up to the next one: with
    both bounds rounded up, a half-open window keeps exactly the rows it covers, so ``[0.5 µs, 1.5 µs)``
    holds the row at 1 µs and not the one at 0 µs.
    """
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        value.tzinfo,
        fold=value.fold,
    )
    utc = plain.astimezone(UTC) if plain.tzinfo is not None else plain.replace(tzinfo=UTC)
    return utc + _ONE_US if getattr(value, "nanosecond", 0) else utc


_NUMPY_UNITS_US = {"W": 7 * 86_400_000_000, "D": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000}
_NUMPY_UNITS_US |= {"s": 1_000_000, "ms": 1_000, "us": 1}
_NUMPY_SUB_US = {"ns": 1_000, "ps": 1_000_000, "fs": 1_000_000_000, "as": 1_000_000_000_000}


def _from_numpy(value: np.datetime64) -> datetime | None:
    """A numpy instant as UTC microseconds (sub-microseconds rounded up), exactly for any unit; None if NaT."""
    if np.isnat(value):
        return None
    unit, count = np.datetime_data(value.dtype)
    if unit in ("Y", "M"):
        value, unit, count = value.astype("datetime64[D]"), "D", 1
    ticks = int(value.astype(np.int64)) * count
    microseconds = ticks * _NUMPY_UNITS_US[unit] if unit in _NUMPY_UNITS_US else -(-ticks // _NUMPY_SUB_US[unit])
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)


def _instant(name: str, value: object) -> datetime | None:
    """One window bound as UTC microseconds; datetimes (pandas Timestamps too) and numpy datetime64 accepted."""
    if value is None:
        return None
    if not isinstance(value, datetime | np.datetime64):
        msg = f"`{name}` must be a datetime, got {type(value).__name__}: {value!r}"
        raise ConfigurationError(msg)
    try:
        instant = _from_numpy(value) if isinstance(value, np.datetime64) else as_utc(value)
    except (OverflowError, ValueError, TypeError):  # past datetime's range, or pandas' NaT
        instant = None
    if instant is None or not EARLIEST_BOUND <= instant <= LATEST_BOUND:
        msg = (
            f"`{name}` ({value!r}) is not a time Logfire can query: it must lie between {EARLIEST_BOUND:%Y-%m-%d} and "
            f"{LATEST_BOUND:%Y-%m-%d} UTC\n\nHint: pass None for an open side of the window."
        )
        raise ConfigurationError(msg)
    return instant


def clamped(value: datetime) -> datetime:
    """``value`` moved into the range a window may have (for hints a microsecond past a bound the user gave)."""
    return min(max(value, EARLIEST_BOUND), LATEST_BOUND)


def checked_window(low: object, high: object) -> tuple[datetime | None, datetime | None]:
    """The ``min_timestamp``/``max_timestamp`` pair, validated, in UTC on whole microseconds (see :func:`as_utc`)."""
    low, high = _instant("min_timestamp", low), _instant("max_timestamp", high)
    if low is not None and high is not None and low > high:
        msg = f"`min_timestamp` ({low.isoformat()}) is after `max_timestamp` ({high.isoformat()})"
        raise ConfigurationError(msg)
    return low, high


def accept_header(fmt: Format, version: Literal["v1", "v2"]) -> str:
    """The ``Accept`` header: v2 also accepts RFC 9457 problem details for errors."""
    media = _MEDIA_TYPES[fmt]
    return f"{media}, application/problem+json;q=0.9" if version == "v2" else media


def build_request(
    client: httpx.Client | httpx.AsyncClient, query: Query, fmt: Format, version: Literal["v1", "v2"], *, rows: bool
) -> httpx.Request:
    """The request for ``query`` in ``fmt`` over protocol ``version``; ``rows`` picks row-oriented v1 JSON."""
    headers = {"accept": accept_header(fmt, version)}
    if version == "v2":
        return client.build_request(
            "POST",
            "/v2/query",
            content=orjson.dumps(query.v2_body()),
            headers=headers | {"content-type": "application/json"},
        )
    return client.build_request("GET", "/v1/query", params=query.v1_params(rows=rows), headers=headers)


def _retry_after(response: httpx.Response, problem: dict[str, Any] | None) -> float | None:
    header = response.headers.get("retry-after")
    if header:
        if header.strip().isdigit():
            return float(header.strip())
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    value = (problem or {}).get("retry_after")
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _detail(response: httpx.Response) -> tuple[Any, dict[str, Any] | None]:
    """The error's detail (the legacy ``detail`` when present) and the problem-details object, if any."""
    media = response.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if media in {"application/json", "application/problem+json"}:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.text[:500], None
        if isinstance(body, dict):
            problem = body if media == "application/problem+json" else None
            legacy = body.get("error_details", body)
            detail = legacy.get("detail", legacy) if isinstance(legacy, dict) else legacy
            return detail, problem
        return body, None
    return response.text[:500], None


_STATUS_HINTS = {
    400: ("the query failed", "fix the SQL; Logfire speaks PostgreSQL-flavoured DataFusion SQL"),
    401: ("the read token was refused", "check the token and that `base_url` is your project's region"),
    403: ("the read token lacks access", "create a read token for this project"),
    404: ("not found", "check `base_url`: it should be the Logfire API root, e.g. https://logfire-us.pydantic.dev"),
    422: ("the request was invalid", "see the detail for the field to fix"),
}


def error_from_response(response: httpx.Response, read_token: str) -> QueryHTTPError:
    """The exception for an error response whose body has been read."""
    status = response.status_code
    detail, problem = _detail(response)
    detail_text = scrub(detail if isinstance(detail, str) else orjson.dumps(detail).decode(), read_token)
    what, hint = _STATUS_HINTS.get(status, ("unexpected response", "the service may be down, or `base_url` wrong"))
    message = f"{what} (HTTP {status}): {detail_text}\n\nHint: {hint}."
    fields = {"status_code": status, "detail": detail, "request": response.request, "response": response}
    if status == 400:
        return QueryExecutionError(message, **fields)
    if status == 422:
        return QueryRequestError(message, **fields)
    if status in {401, 403}:
        return AuthenticationError(message, **fields)
    if status == 429:
        retry_after = _retry_after(response, problem)
        if retry_after is None:
            message = (
                f"rate limited without a Retry-After (HTTP 429): {detail_text}\n\nHint: this is usually a query "
                "quota, which retrying will not fix; wait, or lower `max_concurrency` and the request rate."
            )
        return RateLimitError(message, retry_after=retry_after, **fields)
    return UnexpectedResponseError(message, **fields)


def unexpected_body(response: httpx.Response, expected: str, body: bytes, read_token: str) -> UnexpectedResponseError:
    """The error for a 200 answer whose body is not ``expected`` (an HTML page from a wrong URL, say)."""
    start = scrub(body[:200].decode("utf-8", "replace"), read_token)
    message = (
        f"expected {expected} from {response.request.url.copy_with(query=None)} but got "
        f"{response.headers.get('content-type', 'no content type')}: {start!r}"
        "\n\nHint: check `base_url`: it should be the Logfire API root, not the web app."
    )
    return UnexpectedResponseError(message, status_code=200, detail=start, request=response.request, response=response)


@dataclass(frozen=True)
class Retry:
    """When and how long to wait before retrying a failed request.

    Retried: 429 with ``Retry-After`` (up to ``max_retry_after``), 502/503/504, connection failures, read
    timeouts and bodies cut short. Never retried: 400, 401, 403, 422, and 429 without ``Retry-After``.

    Parameters
    ----------
    retries
        Retries after the first attempt; 0 disables retrying.
    backoff
        Base of the exponential backoff, in seconds; each wait is drawn uniformly from ``[0, backoff * 2**n]``.
    max_backoff
        Cap of one backoff wait.
    max_retry_after
        The longest ``Retry-After`` honoured; a longer one raises at once.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            msg = f"`retries` must be >= 0, got {self.retries}"
            raise ConfigurationError(msg)

    def delay(self, error: LogfireIOError, attempt: int) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up and raise ``error``."""
        if attempt >= self.retries:
            return None
        if isinstance(error, RateLimitError):
            if error.retry_after is None or error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        retryable = isinstance(error, TransportError | IncompleteResponseError) or (
            isinstance(error, QueryHTTPError) and error.status_code in {502, 503, 504}
        )
        if not retryable:
            return None
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


def _strip_field(field: dict[str, Any]) -> dict[str, Any]:
    """A v2 schema field in the v1 ``ColumnDetails`` shape: ``data_type`` -> ``datatype``, no dict/metadata keys."""
    out = {}
    for key, value in field.items():
        if key in {"dict_id", "dict_is_ordered", "metadata"}:
            continue
        out["datatype" if key == "data_type" else key] = _strip_datatype(value) if key == "data_type" else value
    return out


def _strip_datatype(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_field(v) if isinstance(v, dict) and "name" in v else _strip_datatype(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_strip_field(v) if isinstance(v, dict) and "name" in v else _strip_datatype(v) for v in value]
    return value


def rows_result_from_v2(body: dict[str, Any]) -> dict[str, Any]:
    """``{"columns": [...], "rows": [...]}`` from a ``POST /v2/query`` JSON body."""
    return {"columns": [_strip_field(f) for f in body["schema"]["fields"]], "rows": body["data"]}


def rows_to_columns(result: dict[str, Any]) -> dict[str, Any]:
    """Column-oriented ``{"columns": [{..., "values": [...]}]}`` from a row-oriented result."""
    rows = result["rows"]
    return {"columns": [c | {"values": [row.get(c["name"]) for row in rows]} for c in result["columns"]]}
