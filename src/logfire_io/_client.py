"""``LogfireQueryClient`` and ``AsyncLogfireQueryClient``: the Query API clients the Logfire docs describe.

As in httpx, one base class holds all the logic: configuration, request building, the retry and v1-fallback
flow, error mapping and decoding. The flow is a generator that yields what it needs done (send a request,
sleep, read a body) and is driven by the sync or the async client, which only do I/O.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio
import httpx
import orjson
import pyarrow as pa

from logfire_io._exceptions import ConfigurationError, IncompleteResponseError, LogfireIOError, TransportError
from logfire_io._ipc import ArrowStreamDecoder, IncompleteStream
from logfire_io._protocol import (
    ARROW_MEDIA_TYPE,
    DEFAULT_TIMEOUT,
    ApiVersion,
    Format,
    Query,
    Retry,
    build_request,
    error_from_response,
    resolve_base_url,
    rows_result_from_v2,
    rows_to_columns,
    scrub,
    unexpected_body,
)

if TYPE_CHECKING:
    from datetime import datetime
    from types import TracebackType

__all__ = ["AsyncLogfireQueryClient", "LogfireQueryClient"]

try:
    _VERSION = version("logfire-io")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    _VERSION = "0+unknown"
USER_AGENT = f"logfire-io/{_VERSION} (python-httpx/{httpx.__version__})"


@dataclass(frozen=True)
class _Read:
    """Flow step: read the body of a 200 response, as bytes or as an Arrow table."""

    response: httpx.Response
    kind: Literal["bytes", "arrow"]


_Step = httpx.Request | float | _Read
_Flow = Generator[_Step, Any, Any]


class _BaseQueryClient:
    """Configuration and protocol logic shared by both clients; no I/O."""

    _client: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        read_token: str,
        base_url: str | None,
        *,
        api_version: ApiVersion,
        retries: int | Retry,
    ) -> None:
        if not isinstance(read_token, str) or not read_token:
            msg = "`read_token` must be a non-empty string"
            raise ConfigurationError(msg)
        if api_version not in ("auto", "v1", "v2"):
            msg = f"`api_version` must be 'auto', 'v1' or 'v2', got {api_version!r}"
            raise ConfigurationError(msg)
        self.read_token = read_token
        self.base_url = resolve_base_url(base_url, read_token)
        self.api_version: ApiVersion = api_version
        self.retry = retries if isinstance(retries, Retry) else Retry(retries=retries)
        self._version: Literal["v1", "v2"] = "v1" if api_version == "v1" else "v2"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_version={self.api_version!r})"

    @staticmethod
    def _headers(headers: Any, read_token: str) -> dict[str, str]:
        merged = dict(httpx.Headers(headers or {}))
        merged["authorization"] = read_token
        merged.setdefault("user-agent", USER_AGENT)
        return merged

    @property
    def protocol(self) -> Literal["v1", "v2"]:
        """The Query API version in use (``auto`` settles on v1 after a v2 404/405)."""
        return self._version

    def _request(self, query: Query, fmt: Format, *, rows: bool = True) -> httpx.Request:
        return build_request(self._client, query, fmt, self._version, rows=rows)

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

    def _flow(
        self, query: Query, fmt: Format, read: Literal["bytes", "arrow"] | None, *, rows: bool = True, attempt: int = 0
    ) -> _Flow:
        """Send ``query`` until it succeeds or fails for good.

        Returns the open 200 response, or with ``read`` the pair (response, body as bytes or an Arrow table).
        """
        while True:
            result = yield self._request(query, fmt, rows=rows)
            if isinstance(result, httpx.Response) and result.status_code == 200:
                media = result.headers.get("content-type", ARROW_MEDIA_TYPE).split(";")[0].strip()
                if fmt == "arrow" and media not in {ARROW_MEDIA_TYPE, "application/octet-stream"}:
                    result.close()
                    raise unexpected_body(result, "an Arrow IPC stream", b"", self.read_token)
                if read is None:
                    return result
                body = yield _Read(result, read)
                if not isinstance(body, BaseException):
                    return result, body
                if not isinstance(body, httpx.TransportError | IncompleteStream):
                    raise self._undecodable(result, "an Arrow IPC stream", body)
                error = self._transport_error(body)
            elif isinstance(result, httpx.Response):
                if self._falls_back(result):
                    continue
                error = error_from_response(result, self.read_token)
            else:
                error = self._transport_error(result)
            delay = self.retry.delay(error, attempt)
            if delay is None:
                raise error
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
            raise error from exc
        return delay

    def _undecodable(self, response: httpx.Response, expected: str, exc: BaseException) -> LogfireIOError:
        return unexpected_body(response, expected, str(exc).encode(), self.read_token)

    def _json(self, response: httpx.Response, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise unexpected_body(response, "JSON", body, self.read_token) from None

    def _rows_result(self, response: httpx.Response, body: bytes) -> dict[str, Any]:
        data = self._json(response, body)
        if self._version == "v2":
            if not isinstance(data, dict) or "schema" not in data or "data" not in data:
                raise unexpected_body(response, 'a v2 JSON body {"schema", "data"}', body, self.read_token)
            return rows_result_from_v2(data)
        return data  # type: ignore[no-any-return]

    def _columns_result(self, response: httpx.Response, body: bytes) -> dict[str, Any]:
        return (
            rows_to_columns(self._rows_result(response, body)) if self._version == "v2" else self._json(response, body)
        )


def _read_arrow(chunks: Iterator[bytes]) -> pa.Table:
    decoder = ArrowStreamDecoder()
    batches = [batch for chunk in chunks for batch in decoder.feed(chunk)]
    decoder.finish()
    return pa.Table.from_batches(batches, schema=decoder.schema)


class LogfireQueryClient(_BaseQueryClient):
    """Synchronous client of the Logfire Query API.

    Parameters
    ----------
    read_token
        A project read token. Never logged, never shown in ``repr`` or errors.
    base_url
        The API root; defaults to ``$LOGFIRE_BASE_URL``, then to the region named in the token. Any path prefix
        is kept (``https://proxy/logfire`` sends ``https://proxy/logfire/v2/query``).
    timeout
        httpx timeout; the read timeout applies between chunks of a streamed body.
    api_version
        ``"auto"`` uses ``POST /v2/query`` and falls back to ``GET /v1/query`` once if v2 answers 404/405;
        ``"v1"``/``"v2"`` pin one.
    retries
        Number of retries, or a :class:`~logfire_io.Retry` policy.
    **httpx_client_kwargs
        Passed to ``httpx.Client`` (``transport=``, ``limits=``, ``verify=``, ``headers=``...).

    Examples
    --------
    >>> with LogfireQueryClient(read_token) as client:  # doctest: +SKIP
    ...     table = client.query_arrow("SELECT * FROM records", min_timestamp=since)
    """

    _client: httpx.Client

    def __init__(
        self,
        read_token: str,
        base_url: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        *,
        api_version: ApiVersion = "auto",
        retries: int | Retry = 3,
        **httpx_client_kwargs: Any,
    ) -> None:
        super().__init__(read_token, base_url, api_version=api_version, retries=retries)
        headers = self._headers(httpx_client_kwargs.pop("headers", None), read_token)
        self.timeout = timeout
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, **httpx_client_kwargs)

    @property
    def client(self) -> httpx.Client:
        """The underlying ``httpx.Client``."""
        return self._client

    def _drive(self, flow: _Flow) -> Any:
        step = next(flow)
        while True:
            result: Any
            if isinstance(step, httpx.Request):
                try:
                    result = self._client.send(step, stream=True)
                    if result.status_code != 200:
                        result.read()
                        result.close()
                except httpx.TransportError as exc:
                    result = exc
            elif isinstance(step, _Read):
                try:
                    try:
                        if step.kind == "bytes":
                            result = step.response.read()
                        else:
                            result = _read_arrow(step.response.iter_bytes())
                    finally:
                        step.response.close()
                except (httpx.TransportError, IncompleteStream, pa.ArrowInvalid, ValueError) as exc:
                    result = exc
            else:
                time.sleep(step)
                result = None
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value

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
        """Column-oriented JSON: ``{"columns": [{"name", "datatype", "nullable", "values"}]}``.

        Parameters
        ----------
        sql
            The query, in Logfire's SQL.
        min_timestamp, max_timestamp
            The time window on ``start_timestamp`` (``recorded_timestamp`` for metrics); naive datetimes are
            UTC. Without ``min_timestamp``, 2020-01-01 UTC is sent (v2 requires a lower bound).
        limit
            Rows to return, 1 to 10,000; the service's default (100 on v2, 500 on v1) when None.
        timezone
            IANA zone the query runs in (v2 only).
        environment
            ``deployment_environment`` values to keep (v2 only); ``""`` means rows without one.
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "json", "bytes", rows=False))
        return self._columns_result(response, body)

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
        """Row-oriented JSON: ``{"columns": [{"name", "datatype", "nullable"}], "rows": [{...}]}``.

        Parameters: see :meth:`query_json`.
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "json", "bytes"))
        return self._rows_result(response, body)

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
        Parameters: see :meth:`query_json`.
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        _, table = self._drive(self._flow(query, "arrow", "arrow"))
        return table  # type: ignore[no-any-return]

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
        """The result as CSV text, with a header row. Parameters: see :meth:`query_json`."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = self._drive(self._flow(query, "csv", "bytes"))
        return body.decode(response.encoding or "utf-8")  # type: ignore[no-any-return]

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

        Memory holds one batch plus network buffers while batches are consumed. If the connection breaks before
        the first batch, the request is retried; after it, :class:`~logfire_io.IncompleteResponseError` is
        raised rather than a silently short stream. Parameters: see :meth:`query_json`.
        """
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        attempt = 0
        while True:
            response = self._drive(self._flow(query, "arrow", None, attempt=attempt))
            decoder = ArrowStreamDecoder()
            try:
                try:
                    for chunk in response.iter_bytes():
                        yield from decoder.feed(chunk)
                finally:
                    response.close()
                decoder.finish()
                return
            except (httpx.TransportError, IncompleteStream) as exc:
                delay = self._stream_retry_delay(exc, decoder, attempt)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncLogfireQueryClient(_BaseQueryClient):
    """Asynchronous client of the Logfire Query API; the same methods as :class:`LogfireQueryClient`, awaited.

    Parameters: see :class:`LogfireQueryClient` (``**httpx_client_kwargs`` go to ``httpx.AsyncClient``).
    """

    _client: httpx.AsyncClient

    def __init__(
        self,
        read_token: str,
        base_url: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        *,
        api_version: ApiVersion = "auto",
        retries: int | Retry = 3,
        **httpx_client_kwargs: Any,
    ) -> None:
        super().__init__(read_token, base_url, api_version=api_version, retries=retries)
        headers = self._headers(httpx_client_kwargs.pop("headers", None), read_token)
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=headers, **httpx_client_kwargs
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient``."""
        return self._client

    async def _drive(self, flow: _Flow) -> Any:
        step = next(flow)
        while True:
            result: Any
            if isinstance(step, httpx.Request):
                try:
                    result = await self._client.send(step, stream=True)
                    if result.status_code != 200:
                        await result.aread()
                        await result.aclose()
                except httpx.TransportError as exc:
                    result = exc
            elif isinstance(step, _Read):
                try:
                    result = await _aread(step)
                except (httpx.TransportError, IncompleteStream, pa.ArrowInvalid, ValueError) as exc:
                    result = exc
            else:
                await anyio.sleep(step)
                result = None
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value

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
        """See :meth:`LogfireQueryClient.query_json`."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "json", "bytes", rows=False))
        return self._columns_result(response, body)

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
        """See :meth:`LogfireQueryClient.query_json_rows`."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "json", "bytes"))
        return self._rows_result(response, body)

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
        """See :meth:`LogfireQueryClient.query_arrow`."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        _, table = await self._drive(self._flow(query, "arrow", "arrow"))
        return table  # type: ignore[no-any-return]

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
        """See :meth:`LogfireQueryClient.query_csv`."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        response, body = await self._drive(self._flow(query, "csv", "bytes"))
        return body.decode(response.encoding or "utf-8")  # type: ignore[no-any-return]

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
        """See :meth:`LogfireQueryClient.iter_arrow_batches`; an async iterator."""
        query = Query(sql, min_timestamp, max_timestamp, limit, timezone, environment)
        attempt = 0
        while True:
            response = await self._drive(self._flow(query, "arrow", None, attempt=attempt))
            decoder = ArrowStreamDecoder()
            try:
                try:
                    async for chunk in response.aiter_bytes():
                        for batch in decoder.feed(chunk):
                            yield batch
                finally:
                    await response.aclose()
                decoder.finish()
                return
            except (httpx.TransportError, IncompleteStream) as exc:
                delay = self._stream_retry_delay(exc, decoder, attempt)
            await anyio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _aread(step: _Read) -> Any:
    try:
        if step.kind == "bytes":
            return await step.response.aread()
        decoder = ArrowStreamDecoder()
        batches = []
        async for chunk in step.response.aiter_bytes():
            batches.extend(decoder.feed(chunk))
        decoder.finish()
        return pa.Table.from_batches(batches, schema=decoder.schema)
    finally:
        await step.response.aclose()
