"""``LogfireQueryClient`` and ``AsyncLogfireQueryClient``: the Query API clients the Logfire docs describe.

As in httpx, one base class holds all the logic: configuration, request building, the retry and v1-fallback
flow, error mapping and decoding. The flow is a generator that yields what it needs done (send a request,
sleep, read a body) and is driven by the sync or the async client, which only do I/O.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio
import httpx
import orjson
import pyarrow as pa

from logfire_io._body import BodyLimits, BodyReader, BodyRefused, DeadlineExceeded
from logfire_io._deadline import bound_sockets, deadline, past
from logfire_io._docs import awaited, documented
from logfire_io._exceptions import (
    ConfigurationError,
    IncompleteResponseError,
    LogfireIOError,
    RateLimitError,
    TransportError,
)
from logfire_io._ipc import ArrowStreamDecoder, IncompleteStream, InvalidStream
from logfire_io._limiter import current_limiter, sleep
from logfire_io._protocol import (
    ARROW_MEDIA_TYPE,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    ApiVersion,
    Format,
    Query,
    Retry,
    build_request,
    error_from_response,
    invalid_body,
    resolve_base_url,
    resolve_read_token,
    rows_result_from_v2,
    rows_to_columns,
    scrub,
    split_timeout,
    unexpected_body,
    v1_shape_problem,
    v2_shape_problem,
)

if TYPE_CHECKING:
    from datetime import datetime
    from types import TracebackType

__all__ = ["VERSION", "AsyncLogfireQueryClient", "LogfireQueryClient"]

try:
    VERSION = version("logfire-io")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    VERSION = "0+unknown"
"""The installed version of logfire-io (``logfire_io.__version__``)."""
USER_AGENT = f"logfire-io/{VERSION} (python-httpx/{httpx.__version__})"


@dataclass(frozen=True)
class _Read:
    """Flow step: read the body of a response, as bytes or as an Arrow table, within the client's limits."""

    response: httpx.Response
    kind: Literal["bytes", "arrow"]
    started: float
    """``time.monotonic()`` when the request was sent: the deadline counts from there."""
    max_rows: int
    """The most rows the answer may hold (the request's limit)."""


_Step = httpx.Request | float | _Read
_Flow = Generator[_Step, Any, Any]
_RETRYABLE = (httpx.TransportError, IncompleteStream)
_REFUSED = (InvalidStream, BodyRefused, DeadlineExceeded)
_BODY_ERRORS = (*_RETRYABLE, *_REFUSED)


class _BaseQueryClient:
    """Configuration and protocol logic shared by both clients; no I/O."""

    _client: httpx.Client | httpx.AsyncClient
    _client_class: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        read_token: str | None = None,
        base_url: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        *,
        api_version: ApiVersion = "auto",
        retries: int | Retry = 3,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
        **httpx_client_kwargs: Any,
    ) -> None:
        read_token = resolve_read_token(read_token)
        if api_version not in ("auto", "v1", "v2"):
            msg = f"`api_version` must be 'auto', 'v1' or 'v2', got {api_version!r}"
            raise ConfigurationError(msg)
        if not isinstance(retries, Retry) and (isinstance(retries, bool) or not isinstance(retries, int)):
            msg = f"`retries` must be a number of retries or a logfire_io.Retry, got {retries!r}"
            raise ConfigurationError(msg)
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            msg = f"`max_response_bytes` must be a positive integer, got {max_response_bytes!r}"
            raise ConfigurationError(msg)
        if (
            isinstance(max_compression_ratio, bool)
            or not isinstance(max_compression_ratio, int | float)
            or not (max_compression_ratio >= 1)
        ):
            msg = f"`max_compression_ratio` must be a number >= 1, got {max_compression_ratio!r}"
            raise ConfigurationError(msg)
        self._phases, deadline = split_timeout(timeout)
        self.timeout = timeout
        self.read_token = read_token
        self.base_url = resolve_base_url(base_url, read_token)
        self.api_version: ApiVersion = api_version
        self.retry = retries if isinstance(retries, Retry) else Retry(retries=retries)
        self._limits = BodyLimits(max_response_bytes, float(max_compression_ratio), deadline)
        self._version: Literal["v1", "v2"] = "v1" if api_version == "v1" else "v2"
        self._client = self._client_class(**self._client_kwargs(httpx_client_kwargs))
        bound_sockets(self._client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_version={self.api_version!r})"

    def _client_kwargs(self, httpx_client_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the httpx client: ours (base URL, token, timeouts) over the caller's."""
        headers = dict(httpx.Headers(httpx_client_kwargs.pop("headers", None) or {}))
        headers["authorization"] = self.read_token
        headers.setdefault("user-agent", USER_AGENT)
        return {**httpx_client_kwargs, "base_url": self.base_url, "timeout": self._phases, "headers": headers}

    @property
    def protocol(self) -> Literal["v1", "v2"]:
        """The Query API version in use: ``auto`` starts with v2 and settles on v1 after a v2 404/405.

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     _ = client.query_json_rows("SELECT 1")
        ...     print(client.protocol)
        v2
        """
        return self._version

    def _request(self, query: Query, fmt: Format, *, rows: bool = True) -> httpx.Request:
        return build_request(self._client, query, fmt, self._version, rows=rows)

    def _reader(self, response: httpx.Response, started: float) -> BodyReader:
        return BodyReader(response.headers.get("content-encoding"), self._limits, started)

    def _falls_back(self, response: httpx.Response) -> bool:
        """Switch to v1, once, when an ``auto`` client finds no v2 endpoint."""
        if self.api_version == "auto" and self._version == "v2" and response.status_code in {404, 405}:
            self._version = "v1"
            return True
        return False

    def _transport_error(self, exc: BaseException) -> LogfireIOError:
        text = scrub(str(exc) or type(exc).__name__, self.read_token)
        if isinstance(exc, IncompleteStream):
            return IncompleteResponseError(f"{text}\n\nHint: the connection was cut; it was retried and kept failing.")
        return TransportError(f"cannot reach the Logfire Query API at {self.base_url}: {type(exc).__name__}: {text}")

    def _deadline_error(self, request: httpx.Request, exc: BaseException) -> TransportError:
        return TransportError(
            f"{exc} ({request.method} {request.url.copy_with(query=None)})\n\nHint: narrow "
            "the query, or pass a larger `timeout=` (a number is the total seconds one request may take)."
        )

    def _body_error(self, response: httpx.Response, exc: BaseException) -> LogfireIOError:
        """The error for a body that could not be read: refused ones are final, broken ones may be retried."""
        if isinstance(exc, DeadlineExceeded):
            return self._deadline_error(response.request, exc)
        if isinstance(exc, _REFUSED):
            return invalid_body(response, str(exc), self.read_token)
        return self._transport_error(exc)

    def _flow(
        self, query: Query, fmt: Format, read: Literal["bytes", "arrow"] | None, *, rows: bool = True, attempt: int = 0
    ) -> _Flow:
        """Send ``query`` until it succeeds or fails for good.

        Returns the open 200 response and when it was sent, or with ``read`` the pair (response, body as bytes or
        an Arrow table).
        """
        limiter = current_limiter()
        while True:
            pause = limiter.wait() if limiter is not None else 0.0
            if pause > 0:
                yield pause
            started = time.monotonic()
            request = self._request(query, fmt, rows=rows)
            result = yield request
            if isinstance(result, BaseException) and past(started + self._limits.deadline):
                msg = f"no answer (status and headers) within the {self._limits.deadline:g} s allowed for one request"
                raise self._deadline_error(request, DeadlineExceeded(msg))
            if isinstance(result, BaseException):
                error = self._transport_error(result)
            elif result.status_code == 200:
                if limiter is not None:
                    limiter.accepted()
                media = result.headers.get("content-type", ARROW_MEDIA_TYPE).split(";")[0].strip()
                wrong_media = fmt == "arrow" and media not in {ARROW_MEDIA_TYPE, "application/octet-stream"}
                if read is None and not wrong_media:
                    return result, started
                body = yield _Read(result, "bytes" if wrong_media else read or "bytes", started, query.max_rows)
                if wrong_media and not isinstance(body, BaseException):
                    raise unexpected_body(result, "an Arrow IPC stream", body, self.read_token)
                if not isinstance(body, BaseException):
                    return result, body
                error = self._body_error(result, body)
                if isinstance(body, _REFUSED):
                    raise error
            else:
                body = yield _Read(result, "bytes", started, query.max_rows)
                if isinstance(body, BaseException):
                    error = self._body_error(result, body)
                elif self._falls_back(result):
                    continue
                else:
                    error = error_from_response(result, body, self.read_token)
            delay = self.retry.delay(error, attempt)
            if delay is None:
                raise error
            if limiter is not None and isinstance(error, RateLimitError):  # one it waits for: so does every slice
                limiter.rate_limited(delay, started)
            yield delay
            attempt += 1

    def _stream_retry_delay(self, exc: BaseException, decoder: ArrowStreamDecoder, attempt: int) -> float:
        """How long to wait before re-requesting a broken stream; raises if batches were already handed out."""
        error = self._transport_error(exc)
        delay = None if decoder.batches_decoded else self.retry.delay(error, attempt)
        if delay is None:
            if decoder.batches_decoded:
                error = IncompleteResponseError(
                    f"the Arrow stream broke after {decoder.batches_decoded} batches had been yielded: {error}"
                    "\n\nHint: use `query_arrow` (which re-fetches) or restart the iteration."
                )
            raise error from None
        return delay

    def _text(self, response: httpx.Response, body: bytes) -> str:
        encoding = response.charset_encoding or "utf-8"
        try:
            return body.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise invalid_body(response, f"the text is not valid {encoding}: {exc}", self.read_token) from None

    def _json(self, response: httpx.Response, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise unexpected_body(response, "JSON", body, self.read_token) from None

    def _shaped_json(self, response: httpx.Response, body: bytes, *, rows: bool) -> Any:
        """The JSON body, refused unless it has the documented shape of its API version."""
        data = self._json(response, body)
        problem = v2_shape_problem(data) if self._version == "v2" else v1_shape_problem(data, rows=rows)
        if problem is not None:
            msg = f"the {self._version} JSON body is not in the documented shape: {problem}"
            raise invalid_body(response, msg, self.read_token)
        return data

    def _rows_result(self, response: httpx.Response, body: bytes) -> dict[str, Any]:
        data = self._shaped_json(response, body, rows=True)
        return rows_result_from_v2(data) if self._version == "v2" else data  # type: ignore[no-any-return]

    def _columns_result(self, response: httpx.Response, body: bytes) -> dict[str, Any]:
        if self._version == "v2":
            return rows_to_columns(self._rows_result(response, body))
        return self._shaped_json(response, body, rows=False)  # type: ignore[no-any-return]


class _Body:
    """A whole body gathered from decoded chunks: joined bytes, or an Arrow table decoded as the chunks arrive."""

    def __init__(self, kind: Literal["bytes", "arrow"], max_rows: int, max_bytes: int) -> None:
        self._chunks: list[bytes] = []
        self._batches: list[pa.RecordBatch] = []
        self._decoder = ArrowStreamDecoder(max_rows, max_bytes) if kind == "arrow" else None

    def add(self, chunk: bytes) -> None:
        if self._decoder is None:
            self._chunks.append(chunk)
        else:
            self._batches.extend(self._decoder.feed(chunk))

    def result(self) -> bytes | pa.Table:
        if self._decoder is None:
            return b"".join(self._chunks)
        self._decoder.finish()
        return pa.Table.from_batches(self._batches, schema=self._decoder.schema)


@documented
class LogfireQueryClient(_BaseQueryClient):
    """Synchronous client of the Logfire Query API, as the Logfire documentation describes it.

    One client holds a connection pool; it is safe to share between threads. Every response is checked before it
    is returned: Arrow batches are validated in full, bodies are bounded in size and in compression ratio, and
    each request has an overall deadline.

    Parameters
    ----------
    {client_parameters}

    Raises
    ------
    {client_raises}

    Examples
    --------
    >>> from logfire_io import LogfireQueryClient
    >>> with LogfireQueryClient() as client:  # token and URL from LOGFIRE_READ_TOKEN and LOGFIRE_BASE_URL
    ...     table = client.query_arrow("SELECT span_name, duration FROM records", limit=3)
    >>> table.column_names, table.num_rows
    (['span_name', 'duration'], 3)
    """

    _client: httpx.Client
    _client_class = httpx.Client

    @property
    def client(self) -> httpx.Client:
        """The underlying ``httpx.Client``, for what this client does not wrap.

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     print(type(client.client).__name__)
        Client
        """
        return self._client

    def _drive(self, flow: _Flow) -> Any:
        step = next(flow)
        while True:
            result: Any = None
            if isinstance(step, httpx.Request):
                try:
                    with deadline(time.monotonic() + self._limits.deadline):
                        result = self._client.send(step, stream=True)
                except httpx.TransportError as exc:
                    result = exc
            elif isinstance(step, _Read):
                result = self._read(step)
            else:
                sleep(step)
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value

    def _read(self, step: _Read) -> Any:
        """The body as bytes or an Arrow table, or the exception that stopped reading it."""
        try:
            try:
                reader = self._reader(step.response, step.started)
                body = _Body(step.kind, step.max_rows, self._limits.max_bytes)
                for raw in step.response.iter_raw():
                    for chunk in reader.feed(raw):
                        body.add(chunk)
                reader.finish()
                return body.result()
            finally:
                step.response.close()
        except _BODY_ERRORS as exc:
            return exc

    @documented
    def query_json(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """The result as column-oriented JSON, the shape of ``GET /v1/query``.

        Parameters
        ----------
        {query_parameters}

        Returns
        -------
        dict
            ``{"columns": [{"name", "datatype", "nullable", "values"}]}``: one entry per column, values in row order.

        Raises
        ------
        {query_raises}

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     result = client.query_json("SELECT 1 AS x, 'a' AS y")
        >>> [(column["name"], column["values"]) for column in result["columns"]]
        [('x', [1]), ('y', ['a'])]
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "json", "bytes", rows=False))
        return self._columns_result(response, body)

    @documented
    def query_json_rows(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """The result as row-oriented JSON, the shape of ``GET /v1/query?json_rows=true``.

        Parameters
        ----------
        {query_parameters}

        Returns
        -------
        dict
            ``{"columns": [{"name", "datatype", "nullable"}], "rows": [{name: value, ...}, ...]}``.

        Raises
        ------
        {query_raises}

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     result = client.query_json_rows("SELECT 1 AS x, 'a' AS y")
        >>> result["rows"]
        [{'x': 1, 'y': 'a'}]
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "json", "bytes"))
        return self._rows_result(response, body)

    @documented
    def query_arrow(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> pa.Table:
        """The result as a ``pyarrow.Table``, decoded from the Arrow stream as it arrives.

        A stream cut short is fetched again (up to the retry policy), never returned short.

        Parameters
        ----------
        {query_parameters}

        Returns
        -------
        pyarrow.Table
            Every row of the answer, with the service's Arrow schema (timestamps in UTC).

        Raises
        ------
        {query_raises}

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     table = client.query_arrow("SELECT level, count(*) AS n FROM records GROUP BY level")
        >>> table.column_names
        ['level', 'n']
        """
        return self._checked_arrow(Query(sql, min_timestamp, max_timestamp, limit, timezone, environment))

    def _checked_arrow(self, query: Query, check: Callable[[pa.Table], str | None] = lambda _: None) -> pa.Table:
        """``query_arrow`` of an answer that must also pass ``check`` (its problem, or None) to be returned."""
        response, table = self._drive(self._flow(query, "arrow", "arrow"))
        problem = check(table)
        if problem is not None:
            raise invalid_body(response, problem, self.read_token)
        return table  # type: ignore[no-any-return]

    @documented
    def query_csv(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> str:
        """The result as CSV text, with a header row, as the service writes it.

        Parameters
        ----------
        {query_parameters}

        Returns
        -------
        str
            The CSV text (nested values as JSON).

        Raises
        ------
        {query_raises}

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     print(client.query_csv("SELECT 1 AS x, 'a' AS y"), end="")
        x,y
        1,a
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "csv", "bytes"))
        return self._text(response, body)

    @documented
    def iter_arrow_batches(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the result as ``pyarrow.RecordBatch`` es, each yielded as soon as its bytes have arrived.

        Memory holds one batch plus network buffers while batches are consumed. If the connection breaks before the
        first batch, the request is retried; after it, :class:`~logfire_io.IncompleteResponseError` is raised rather
        than a silently short stream. The time spent between batches by the caller does not count against
        ``timeout``.

        Parameters
        ----------
        {query_parameters}

        Yields
        ------
        pyarrow.RecordBatch
            The batches of the answer, in order, each validated in full.

        Raises
        ------
        {query_raises}

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> with LogfireQueryClient() as client:
        ...     sizes = [batch.num_rows for batch in client.iter_arrow_batches("SELECT span_id FROM records", limit=5)]
        >>> sum(sizes)
        5
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        attempt = 0
        while True:
            response, started = self._drive(self._flow(query, "arrow", None, attempt=attempt))
            decoder = ArrowStreamDecoder(query.max_rows, self._limits.max_bytes)
            try:
                try:
                    reader = self._reader(response, started)
                    for raw in response.iter_raw():
                        for chunk in reader.feed(raw):
                            for batch in decoder.feed(chunk):
                                paused = time.monotonic()
                                yield batch
                                reader.pause(time.monotonic() - paused)
                    reader.finish()
                finally:
                    response.close()
                decoder.finish()
                return
            except _RETRYABLE as exc:
                delay = self._stream_retry_delay(exc, decoder, attempt)
            except _REFUSED as exc:
                raise self._body_error(response, exc) from None
            sleep(delay)
            attempt += 1

    def close(self) -> None:
        """Close the connection pool; the ``with`` block does it on exit.

        Examples
        --------
        >>> from logfire_io import LogfireQueryClient
        >>> client = LogfireQueryClient()
        >>> client.close()
        """
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@documented
class AsyncLogfireQueryClient(_BaseQueryClient):
    """Asynchronous client of the Logfire Query API: the methods of :class:`LogfireQueryClient`, awaited.

    Parameters
    ----------
    {client_parameters}

    Raises
    ------
    {client_raises}

    Examples
    --------
    >>> import asyncio
    >>> from logfire_io import AsyncLogfireQueryClient
    >>> async def spans():
    ...     async with AsyncLogfireQueryClient() as client:
    ...         return await client.query_arrow("SELECT span_name FROM records", limit=3)
    >>> asyncio.run(spans()).num_rows
    3
    """

    _client: httpx.AsyncClient
    _client_class = httpx.AsyncClient

    @property
    def client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient``, for what this client does not wrap.

        Examples
        --------
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> print(type(AsyncLogfireQueryClient().client).__name__)
        AsyncClient
        """
        return self._client

    async def _drive(self, flow: _Flow) -> Any:
        step = next(flow)
        while True:
            result: Any = None
            if isinstance(step, httpx.Request):
                try:
                    with deadline(time.monotonic() + self._limits.deadline):
                        result = await self._client.send(step, stream=True)
                except httpx.TransportError as exc:
                    result = exc
            elif isinstance(step, _Read):
                result = await self._read(step)
            else:
                await anyio.sleep(step)
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value

    async def _read(self, step: _Read) -> Any:
        """The body as bytes or an Arrow table, or the exception that stopped reading it."""
        try:
            try:
                reader = self._reader(step.response, step.started)
                body = _Body(step.kind, step.max_rows, self._limits.max_bytes)
                async for raw in step.response.aiter_raw():
                    for chunk in reader.feed(raw):
                        body.add(chunk)
                reader.finish()
                return body.result()
            finally:
                await step.response.aclose()
        except _BODY_ERRORS as exc:
            return exc

    @awaited(LogfireQueryClient.query_json)
    async def query_json(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """Awaited :meth:`LogfireQueryClient.query_json`, whose docstring completes this one.

        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> async def run():
        ...     async with AsyncLogfireQueryClient() as client:
        ...         result = await client.query_json("SELECT 1 AS x")
        ...     return result
        >>> [(c["name"], c["values"]) for c in asyncio.run(run())["columns"]]
        [('x', [1])]
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "json", "bytes", rows=False))
        return self._columns_result(response, body)

    @awaited(LogfireQueryClient.query_json_rows)
    async def query_json_rows(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """Awaited :meth:`LogfireQueryClient.query_json_rows`, whose docstring completes this one.

        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> async def run():
        ...     async with AsyncLogfireQueryClient() as client:
        ...         result = await client.query_json_rows("SELECT 1 AS x")
        ...     return result
        >>> asyncio.run(run())["rows"]
        [{'x': 1}]
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "json", "bytes"))
        return self._rows_result(response, body)

    @awaited(LogfireQueryClient.query_arrow)
    async def query_arrow(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> pa.Table:
        """Awaited :meth:`LogfireQueryClient.query_arrow`, whose docstring completes this one.

        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> async def run():
        ...     async with AsyncLogfireQueryClient() as client:
        ...         result = await client.query_arrow("SELECT span_id FROM records", limit=4)
        ...     return result
        >>> asyncio.run(run()).num_rows
        4
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        _, table = await self._drive(self._flow(query, "arrow", "arrow"))
        return table  # type: ignore[no-any-return]

    @awaited(LogfireQueryClient.query_csv)
    async def query_csv(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> str:
        """Awaited :meth:`LogfireQueryClient.query_csv`, whose docstring completes this one.

        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> async def run():
        ...     async with AsyncLogfireQueryClient() as client:
        ...         result = await client.query_csv("SELECT 1 AS x")
        ...     return result
        >>> print(asyncio.run(run()), end="")
        x
        1
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "csv", "bytes"))
        return self._text(response, body)

    @awaited(LogfireQueryClient.iter_arrow_batches)
    async def iter_arrow_batches(
        self,
        sql: str,
        min_timestamp: datetime | None = None,
        max_timestamp: datetime | None = None,
        limit: int | None = None,
        *,
        timezone: str | None = None,
        environment: str | list[str] | None = None,
    ) -> AsyncIterator[pa.RecordBatch]:
        """Awaited :meth:`LogfireQueryClient.iter_arrow_batches`, whose docstring completes this one.

        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> async def count():
        ...     async with AsyncLogfireQueryClient() as client:
        ...         batches = client.iter_arrow_batches("SELECT span_id FROM records", limit=5)
        ...         return sum([batch.num_rows async for batch in batches])
        >>> asyncio.run(count())
        5
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        attempt = 0
        while True:
            response, started = await self._drive(self._flow(query, "arrow", None, attempt=attempt))
            decoder = ArrowStreamDecoder(query.max_rows, self._limits.max_bytes)
            try:
                try:
                    reader = self._reader(response, started)
                    async for raw in response.aiter_raw():
                        for chunk in reader.feed(raw):
                            for batch in decoder.feed(chunk):
                                paused = time.monotonic()
                                yield batch
                                reader.pause(time.monotonic() - paused)
                    reader.finish()
                finally:
                    await response.aclose()
                decoder.finish()
                return
            except _RETRYABLE as exc:
                delay = self._stream_retry_delay(exc, decoder, attempt)
            except _REFUSED as exc:
                raise self._body_error(response, exc) from None
            await anyio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the connection pool; the ``async with`` block does it on exit.

        Examples
        --------
        >>> import asyncio
        >>> from logfire_io import AsyncLogfireQueryClient
        >>> asyncio.run(AsyncLogfireQueryClient().aclose())
        """
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
