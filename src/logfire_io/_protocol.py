"""The Query API protocol as pure functions: no I/O, shared by the sync and async clients.

Base URL and token resolution, request bodies and parameters as the official SDK sends them, content
negotiation, mapping error responses to exceptions, and the retry policy.
"""

from __future__ import annotations

import base64
import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import httpx
import numpy as np
import orjson

from logfire_io._body import ACCEPT_ENCODING
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
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "DEFAULT_MAX_RESPONSE_BYTES",
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
    "invalid_body",
    "isoformat",
    "resolve_base_url",
    "resolve_read_token",
    "rows_result_from_v2",
    "rows_to_columns",
    "scrub",
    "split_timeout",
    "v1_shape_problem",
    "v2_shape_problem",
]

MAX_LIMIT = 10_000
"""The most rows the Query API returns for one request."""
DEFAULT_TIMEOUT = 300.0
"""Seconds one request may take in all, from sending it to the last byte of its body."""
_PHASE_TIMEOUT = 30.0
"""The longest single network wait (connecting, or between two chunks) within a numeric timeout."""
DEFAULT_MAX_RESPONSE_BYTES = 1 << 30
"""Decompressed bytes one response may hold: a full 10,000-row answer is rarely above 100 MB."""
DEFAULT_MAX_COMPRESSION_RATIO = 1_000.0
"""Past this many decompressed bytes per compressed byte (above 64 MiB), a body is taken for a bomb."""
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


def resolve_read_token(read_token: object) -> str:
    """The explicit token, else ``$LOGFIRE_READ_TOKEN``, stripped of surrounding whitespace and checked.

    A token read from a file usually ends in a newline: that is stripped. Whitespace, control or non-ASCII
    characters inside it cannot be sent in a header (httpx would fail with the token quoted in its message), so
    they are refused here, before any request, without showing the token.
    """
    if read_token is not None and not isinstance(read_token, str):
        msg = f"`read_token` must be a string, got {type(read_token).__name__}"
        raise ConfigurationError(msg)
    source = "`read_token`" if read_token else "LOGFIRE_READ_TOKEN"
    token = (read_token or os.environ.get("LOGFIRE_READ_TOKEN") or "").strip()
    if not token:
        msg = (
            "no Logfire read token: pass `read_token=` or set the LOGFIRE_READ_TOKEN environment variable"
            "\n\nHint: create one under your project's Settings > Read tokens."
        )
        raise ConfigurationError(msg)
    bad = next((i for i, char in enumerate(token) if not "!" <= char <= "~"), None)
    if bad is not None:
        msg = (
            f"{source} has a space, control or non-ASCII character inside it (character {bad + 1} of "
            f"{len(token)}), so it cannot be a read token\n\nHint: copy the token again from the project's "
            "Settings > Read tokens."
        )
        raise ConfigurationError(msg)
    return token


def resolve_base_url(base_url: str | None, read_token: str) -> str:
    """The explicit URL, else ``$LOGFIRE_BASE_URL``, else the region the token names.

    Tokens older than regions (no ``pylf_v1_<region>_`` prefix) belong to the US region, as the official SDK
    assumes; a token naming a region we do not know is an error rather than a guess that would send it elsewhere.
    """
    if base_url is not None and not isinstance(base_url, str):
        msg = f"`base_url` must be a string, got {type(base_url).__name__}"
        raise ConfigurationError(msg)
    if base_url := (base_url or os.environ.get("LOGFIRE_BASE_URL") or "").strip():
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            url, problem = None, str(exc)
        else:
            problem = "it is not an http(s) URL with a host"
        if url is None or url.scheme not in {"http", "https"} or not url.host:
            msg = (
                f"`base_url` must be the Logfire API root, like https://logfire-us.pydantic.dev, got {base_url!r}: "
                f"{problem}"
            )
            raise ConfigurationError(msg)
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


def _encodings(secret: str) -> list[str]:
    """The forms ``secret`` can take in text: as is, escaped (bytes repr, JSON), URL-encoded and base64.

    For base64 the part that does not depend on the surrounding bytes is taken, at each of the three alignments.
    """
    raw = secret.encode()
    forms = {secret, repr(raw)[2:-1], orjson.dumps(secret).decode()[1:-1], quote(secret, safe=""), quote_plus(secret)}
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode()
            forms.add(encoded[4 if offset else 0 : -4])
    return sorted((f for f in forms if len(f) >= 6), key=len, reverse=True)


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced in every form it can take there, for messages and logs.

    Strings shorter than 6 characters are not secrets worth mangling every message for (real tokens are ~50).
    """
    if len(secret) < 6:
        return text
    for form in _encodings(secret):
        text = text.replace(form, "<read token>")
    return text


def split_timeout(timeout: object) -> tuple[httpx.Timeout, float]:
    """The per-phase httpx timeouts and the overall deadline per request, from the clients' ``timeout=``.

    A number is the deadline, in seconds, for everything one request does; single network waits are also
    limited to 30 s of it, so a stalled connection is noticed (and retried) early. An ``httpx.Timeout`` sets
    the phases as in httpx, and the deadline stays at the default.
    """
    if isinstance(timeout, httpx.Timeout):
        return timeout, DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        msg = f"`timeout` must be a positive number of seconds or an httpx.Timeout, got {timeout!r}"
        raise ConfigurationError(msg)
    return httpx.Timeout(min(float(timeout), _PHASE_TIMEOUT)), float(timeout)


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

    @property
    def max_rows(self) -> int:
        """The most rows an answer may hold: the limit asked for, or the service's cap."""
        return self.limit or MAX_LIMIT

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            msg = f"`sql` must be a non-empty SQL query, got {self.sql!r}"
            raise ConfigurationError(msg)
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT
        ):
            msg = f"`limit` must be an integer from 1 to {MAX_LIMIT:,} (the Query API's cap), got {self.limit!r}"
            raise ConfigurationError(msg)
        if self.timezone is not None and not isinstance(self.timezone, str):
            msg = f"`timezone` must be an IANA zone name like 'Europe/Paris', got {self.timezone!r}"
            raise ConfigurationError(msg)
        environment = self.environment
        if environment is not None and not (
            isinstance(environment, str)
            or (isinstance(environment, list | tuple) and all(isinstance(e, str) for e in environment))
        ):
            msg = f"`environment` must be a name or a list of names, got {environment!r}"
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
            f"`{name}` ({value.isoformat() if isinstance(value, datetime) else value}) is not a time Logfire can "
            f"query: it must lie between {EARLIEST_BOUND:%Y-%m-%d} and {LATEST_BOUND:%Y-%m-%d} UTC\n\nHint: leave "
            f"`{name}` out for an open side of the window."
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
    headers = {"accept": accept_header(fmt, version), "accept-encoding": ACCEPT_ENCODING}
    if version == "v2":
        return client.build_request(
            "POST",
            "/v2/query",
            content=orjson.dumps(query.v2_body()),
            headers=headers | {"content-type": "application/json"},
        )
    return client.build_request("GET", "/v1/query", params=query.v1_params(rows=rows), headers=headers)


_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
"""``Retry-After`` as seconds: RFC 9110's integer, or a decimal; ASCII digits only (``str.isdigit`` takes "²")."""


def _retry_after(response: httpx.Response, problem: dict[str, Any] | None) -> float | None:
    """The wait a 429 asks for, in seconds (0 for a date already past), or None when none can be understood."""
    header = response.headers.get("retry-after", "").strip()
    if _DELAY_SECONDS.fullmatch(header):
        return float(header)
    if header:
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:  # an HTTP-date is always GMT; "-0000" parses as a naive datetime
            return max(0.0, (when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)).total_seconds())
    value = (problem or {}).get("retry_after")
    valid = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf")
    return float(value) if valid else None


def _detail(response: httpx.Response, body: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The error's detail (the legacy ``detail`` when present) and the problem-details object, if any."""
    media = response.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    text = body[:2000].decode(response.charset_encoding or "utf-8", "replace")[:500]
    if media in {"application/json", "application/problem+json"}:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return text, None
        if isinstance(data, dict):
            problem = data if media == "application/problem+json" else None
            legacy = data.get("error_details", data)
            detail = legacy.get("detail", legacy) if isinstance(legacy, dict) else legacy
            return detail, problem
        return data, None
    return text, None


def _scrubbed(value: Any, read_token: str) -> Any:
    """``value`` (an error's detail, parsed JSON) with the token scrubbed from every string in it."""
    if isinstance(value, str):
        return scrub(value, read_token)
    if isinstance(value, list):
        return [_scrubbed(v, read_token) for v in value]
    if isinstance(value, dict):
        return {scrub(str(k), read_token): _scrubbed(v, read_token) for k, v in value.items()}
    return value


_STATUS_HINTS = {
    400: ("the query failed", "fix the SQL; Logfire speaks PostgreSQL-flavoured DataFusion SQL"),
    401: ("the read token was refused", "check the token and that `base_url` is your project's region"),
    403: ("the read token lacks access", "create a read token for this project"),
    404: ("not found", "check `base_url`: it should be the Logfire API root, e.g. https://logfire-us.pydantic.dev"),
    422: ("the request was invalid", "see the detail for the field to fix"),
}


def error_from_response(response: httpx.Response, body: bytes, read_token: str) -> QueryHTTPError:
    """The exception for an error response with ``body``; the token is scrubbed from its message and detail."""
    status = response.status_code
    detail, problem = _detail(response, body)
    detail = _scrubbed(detail, read_token)
    detail_text = detail if isinstance(detail, str) else orjson.dumps(detail, default=str).decode()
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
        else:
            message = (
                f"rate limited (HTTP 429), asked to wait {retry_after:g} s: {detail_text}\n\nHint: retries wait "
                "up to `Retry(max_retry_after=...)` seconds (60 by default); wait and run it again, or lower "
                "`max_concurrency`."
            )
        return RateLimitError(message, retry_after=retry_after, **fields)
    return UnexpectedResponseError(message, **fields)


def unexpected_body(response: httpx.Response, expected: str, body: bytes, read_token: str) -> UnexpectedResponseError:
    """The error for a 200 answer whose body is not ``expected`` (an HTML page from a wrong URL, say)."""
    start = scrub(body.decode("utf-8", "replace"), read_token)[:200]  # scrubbed whole: a cut token would show
    content_type = scrub(response.headers.get("content-type", "no content type"), read_token)
    message = (
        f"expected {expected} from {response.request.url.copy_with(query=None)} but got "
        f"{content_type}: {start!r}"
        "\n\nHint: check `base_url`: it should be the Logfire API root, not the web app."
    )
    return UnexpectedResponseError(message, status_code=200, detail=start, request=response.request, response=response)


def invalid_body(response: httpx.Response, problem: str, read_token: str) -> UnexpectedResponseError:
    """The error for a 200 body that was refused while being read: invalid data, too large, a bomb."""
    request = response.request
    detail = scrub(problem, read_token)
    message = f"the response to {request.method} {request.url.copy_with(query=None)} was refused: {detail}" + (
        ""
        if "\n\nHint:" in detail
        else "\n\nHint: the service (or a proxy in between) sent a broken body; "
        "retrying will not help. Please report it with the query that produced it."
    )
    return UnexpectedResponseError(
        message, status_code=response.status_code, detail=detail, request=request, response=response
    )


def v2_shape_problem(data: object) -> str | None:
    """What is wrong with a ``POST /v2/query`` JSON body, or None when it has the documented shape."""
    if not isinstance(data, dict) or "schema" not in data or "data" not in data:
        return 'it is not an object with "schema" and "data"'
    schema, rows = data["schema"], data["data"]
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        return f'its "schema" is not an object with a "fields" list (got {type(schema).__name__})'
    if not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in schema["fields"]):
        return 'a "schema" field is not an object with a "name"'
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return 'its "data" is not a list of row objects'
    return None


def v1_shape_problem(data: object, *, rows: bool) -> str | None:
    """What is wrong with a ``GET /v1/query`` JSON body, or None when it has the documented shape.

    Row-oriented (``json_rows=true``): ``{"columns": [{"name", ...}], "rows": [{name: value}]}``; column-oriented:
    ``{"columns": [{"name", ..., "values": [...]}]}`` with one value per row in every column.
    """
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
        return 'it is not an object with a "columns" list'
    columns = data["columns"]
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in columns):
        return 'a column is not an object with a "name"'
    if rows:
        if not isinstance(data.get("rows"), list) or not all(isinstance(r, dict) for r in data["rows"]):
            return 'its "rows" is not a list of row objects'
        return None
    if not all(isinstance(c.get("values"), list) for c in columns):
        return 'a column has no "values" list'
    lengths = {c["name"]: len(c["values"]) for c in columns}
    if len(set(lengths.values())) > 1:
        return f"its columns hold different numbers of values ({lengths})"
    return None


_LONGEST_WAIT = 86_400  # past a day a wait is a mistake (and time.sleep overflows on inf)


@dataclass(frozen=True)
class Retry:
    """When and how long to wait before retrying a failed request; give one to a client as ``retries=``.

    Retried: 429 with ``Retry-After`` (up to ``max_retry_after``), 502/503/504, connection failures, read
    timeouts and bodies cut short. Never retried: 400, 401, 403, 422, 429 without ``Retry-After``, bodies refused
    as invalid or too large, and requests past their deadline.

    Parameters
    ----------
    retries
        Retries after the first attempt; 0 disables retrying.
    backoff
        Base of the exponential backoff, in seconds; each wait is drawn uniformly from ``[0, backoff * 2**n]``.
    max_backoff
        Cap of one backoff wait, in seconds.
    max_retry_after
        The longest ``Retry-After`` honoured, in seconds; a longer one raises at once.

    Raises
    ------
    ConfigurationError
        A negative or non-numeric value.

    Examples
    --------
    >>> from logfire_io import LogfireQueryClient, Retry
    >>> with LogfireQueryClient(retries=Retry(retries=5, backoff=0.1)) as client:
    ...     client.query_json_rows("SELECT 1 AS x")["rows"]
    [{'x': 1}]
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            msg = f"`retries` must be an integer >= 0, got {self.retries!r}"
            raise ConfigurationError(msg)
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LONGEST_WAIT:
                msg = f"`{name}` must be a number of seconds from 0 to {_LONGEST_WAIT:,} (a day), got {value!r}"
                raise ConfigurationError(msg)

    def delay(self, error: LogfireIOError, attempt: int) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up and raise ``error``.

        Parameters
        ----------
        error
            The error the attempt ended with.
        attempt
            How many retries were made before it (0 after the first attempt).

        Returns
        -------
        float or None
            The wait in seconds, or None when ``error`` is final or the retries are used up.

        Examples
        --------
        >>> from logfire_io import Retry, TransportError
        >>> policy = Retry(retries=1, backoff=0.5)
        >>> 0 <= policy.delay(TransportError("connection reset"), attempt=0) <= 0.5
        True
        >>> policy.delay(TransportError("connection reset"), attempt=1) is None
        True
        """
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
