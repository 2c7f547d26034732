"""The HTTP face of the local server: Logfire's query and metadata endpoints, as Starlette routes.

The query endpoints are ``async``: they check the token before reading the body, read at most
``max_body_bytes`` of it, validate (raising :class:`ApiError` for anything wrong), and return a
:class:`QueryResponse`, which runs the query on a worker process and relays the body the worker encoded (or,
for a large body, lends the worker the connection to write it; see :mod:`.handoff`), while watching for the
client going away. Nothing CPU-heavy runs in this process. One exception handler renders every
error as Logfire does: ``{"detail": ...}``, or RFC 9457 problem details when the client prefers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA, sql_type_name
from logfire_io.server.engine import Bounds, QuerySpec
from logfire_io.server.faults import STATUS_FAULTS, FaultPlan, InjectedReset, ResponseCut, drip_head
from logfire_io.server.handoff import connection_of, lendable_transport, reset, socket_when_flushed
from logfire_io.server.project_page import project_route
from logfire_io.server.ratelimit import RateLimiter
from logfire_io.server.receivers import ingest_routes, token_of
from logfire_io.server.workers import (
    Answer,
    BodyFormat,
    QueryFailed,
    QueryTimeout,
    WorkerDied,
    WorkerPool,
    WorkerRequest,
    WorkersBusy,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from logfire_io.server.store import Store

__all__ = ["ApiError", "GzipPolicy", "QueryLogEntry", "QueryResponse", "ServerState", "create_app"]

MAX_LIMIT = 10_000
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
_MEDIA_TYPES = {"application/json": "json", ARROW_MEDIA_TYPE: "arrow", "text/csv": "csv"}
Format = Literal["json", "arrow", "csv"]
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
GzipPolicy = bool | Literal["auto"]
"""Whether answers are gzipped for clients that accept it: always, never, or ``"auto"`` (not Arrow to loopback)."""

log = logging.getLogger("logfire_io.server")


class ApiError(Exception):
    """An error response: status, a detail for the client, optional headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


@dataclass(frozen=True)
class QueryLogEntry:
    """What one query request asked for (never the token), so tests can assert on pushdown."""

    endpoint: str
    sql: str
    format: str
    limit: int
    min_timestamp: datetime | None
    max_timestamp: datetime | None


@dataclass
class ServerState:
    """Everything the endpoints share; one per server."""

    read_token: str
    pool: WorkerPool
    faults: FaultPlan = field(default_factory=FaultPlan)
    bounds: Bounds = "[)"
    deadline: float = 30.0
    latency_ms: float = 0.0
    rate: RateLimiter = field(default_factory=RateLimiter)
    max_body_bytes: int = 1 << 20
    max_result_bytes: int = 256 << 20
    gzip: GzipPolicy = "auto"
    on_ready: Callable[[], None] | None = None
    """Called once the workers are ready (``serve`` prints the URL and token then)."""
    api_versions: frozenset[str] = frozenset({"v1", "v2"})
    organization_name: str = "local"
    project_name: str = "logfire-io-local"
    query_log: deque[QueryLogEntry] = field(default_factory=lambda: deque(maxlen=1000))
    write_token: str | None = None
    store: Store | None = None
    max_ingest_bytes: int = 64 << 20


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.logfire
    return state


_UNREAD_BODY = {"Connection": "close"}
"""Headers of an error answered before the body was read: the connection goes, and the rest of the body with it."""


def _check_token(request: Request) -> ServerState:
    state = _state(request)
    given = request.headers.get("authorization", "")
    if given[:7].lower() == "bearer ":
        given = given[7:]
    headers = _UNREAD_BODY if request.method == "POST" else None
    if not given:
        raise ApiError(401, "missing read token: send it in the `Authorization` header", headers)
    if not hmac.compare_digest(given.strip().encode(), state.read_token.encode()):
        if state.write_token and hmac.compare_digest(given.strip().encode(), state.write_token.encode()):
            msg = "that is the write token, which can only export telemetry; queries need the read token"
            raise ApiError(401, msg, headers)
        raise ApiError(401, "invalid read token", headers)
    return state


def _negotiate(accept: str | None) -> Format:
    """Pick json, arrow or csv from an Accept header with q-values; none, ``*/*`` or ``application/*`` is JSON."""
    if not accept or not accept.strip():
        return "json"
    best: tuple[float, int, Format] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        fmt: Format | None = _MEDIA_TYPES.get(media)  # type: ignore[assignment]
        if fmt is None and media in {"*/*", "application/*"}:
            fmt = "json"
        if fmt is not None and quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, fmt)
    if best is None:
        raise ApiError(406, f"cannot answer with {accept!r}; accept application/json, {ARROW_MEDIA_TYPE} or text/csv")
    return best[2]


def _timestamp(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"`{name}` must be an RFC 3339 timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(422, f"`{name}` is not a valid RFC 3339 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _limit(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"`limit` must be an integer, got {value!r}")
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(422, f"`limit` must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def _micros(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class _Query:
    sql: str
    limit: int
    min_timestamp: datetime | None
    max_timestamp: datetime | None
    timezone: str = "UTC"
    environments: tuple[str, ...] | None = None
    explain: bool = False


def _validated(query: _Query) -> _Query:
    if not isinstance(query.sql, str) or not query.sql.strip():
        raise ApiError(422, "`sql` is required and must be a non-empty string")
    if query.min_timestamp and query.max_timestamp and query.min_timestamp > query.max_timestamp:
        raise ApiError(
            422,
            f"`min_timestamp` ({query.min_timestamp.isoformat()}) is after `max_timestamp` "
            f"({query.max_timestamp.isoformat()})",
        )
    try:
        ZoneInfo(query.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, f"`timezone` is not a known IANA time zone: {query.timezone!r}") from None
    return query


def _v2_query(body: Any) -> _Query:
    if not isinstance(body, dict):
        raise ApiError(422, "the request body must be a JSON object with at least `sql` and `min_timestamp`")
    if body.get("min_timestamp") is None:
        raise ApiError(422, "`min_timestamp` is required")
    environments = body.get("deployment_environment")
    if isinstance(environments, str):
        environments = [environments]
    if environments is not None and not (
        isinstance(environments, list) and all(isinstance(e, str) for e in environments)
    ):
        raise ApiError(422, "`deployment_environment` must be a list of strings")
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise ApiError(422, f"`explain` must be a JSON boolean (true or false), got {explain!r}")
    timezone = body.get("timezone") or "UTC"
    if not isinstance(timezone, str):
        raise ApiError(422, f"`timezone` must be a string, got {timezone!r}")
    return _validated(
        _Query(
            sql=body.get("sql"),  # type: ignore[arg-type]
            limit=_limit(body.get("limit"), 100),
            min_timestamp=_timestamp("min_timestamp", body.get("min_timestamp")),
            max_timestamp=_timestamp("max_timestamp", body.get("max_timestamp")),
            timezone=timezone,
            environments=tuple(environments) if environments is not None else None,
            explain=explain,
        )
    )


def _v1_query(request: Request) -> tuple[_Query, bool]:
    params = request.query_params
    flag = (params.get("json_rows") or params.get("row_oriented") or "").lower()
    query = _Query(
        sql=params.get("sql", ""),
        limit=_limit(params.get("limit"), 500),
        min_timestamp=_timestamp("min_timestamp", params.get("min_timestamp")),
        max_timestamp=_timestamp("max_timestamp", params.get("max_timestamp")),
    )
    return _validated(query), flag in {"true", "1", "yes"}


def _spec(state: ServerState, query: _Query) -> QuerySpec:
    return QuerySpec(
        sql=query.sql,
        limit=query.limit,
        min_timestamp=_micros(query.min_timestamp),
        max_timestamp=_micros(query.max_timestamp),
        timezone=query.timezone,
        environments=query.environments,
        explain=query.explain,
        bounds=state.bounds,
    )


def _error_for(state: ServerState, exc: Exception) -> ApiError:
    """The client's error response for what the worker pool reported."""
    if isinstance(exc, QueryFailed):
        return ApiError(400, str(exc))
    if isinstance(exc, QueryTimeout):
        return ApiError(400, f"query exceeded the server's deadline of {state.deadline:g} s and was stopped")
    if isinstance(exc, WorkersBusy):
        return ApiError(503, "every query worker is busy; retry shortly", {"Retry-After": "1"})
    return ApiError(500, "the query worker died while running the query (out of memory?)")


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() in {"gzip", "x-gzip", "*"}:
            return not any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
    return False


def _compress(request: Request, state: ServerState, fmt: Format) -> bool:
    """Whether to gzip this answer: when the client accepts it, but under ``"auto"`` not an Arrow stream to loopback.

    On loopback, compressing Arrow costs several times more CPU than sending it as it is.
    """
    if state.gzip is False or not _accepts_gzip(request.headers.get("accept-encoding", "")):
        return False
    if state.gzip == "auto" and fmt == "arrow":
        host = request.client.host if request.client else ""
        return not (host.startswith("127.") or host in {"::1", "localhost"})
    return True


async def _read_body(request: Request, state: ServerState, deadline: float) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over the limit (unread when declared)."""
    limit = state.max_body_bytes
    declared = request.headers.get("content-length", "")
    hint = "this server accepts at most {limit:,} bytes (`max_body_bytes` / `--max-body-bytes`)"
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is {int(declared):,} bytes; " + hint.format(limit=limit), _UNREAD_BODY)
    chunks, size = [], 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "the request body is too large; " + hint.format(limit=limit), _UNREAD_BODY)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within the deadline of {state.deadline:g} s") from None
    except ClientDisconnect:  # nobody will read the answer; this only keeps the error log for real errors
        raise ApiError(400, "the client went away while sending the request body") from None
    return b"".join(chunks)


def _faulted(fault: str, body: bytes, *, arrow: bool) -> tuple[list[bytes], bool]:
    """The pieces to send for a body fault, and whether the connection is reset after them."""
    if fault == "slow":
        step = max(1, len(body) // 20)
        return [body[start : start + step] for start in range(0, len(body), step)], False
    if fault == "truncate":
        return [body[: -len(_EOS)] if arrow and body.endswith(_EOS) else body[: len(body) // 2]], False
    return [body[: len(body) // 2]], True


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


class QueryResponse:
    """An ASGI response that runs one query on a worker and relays its answer.

    It watches the connection the whole time: if the client goes away (while the query waits for a worker, runs,
    or is being sent), the work is cancelled at once and the pool stops the query (see :class:`WorkerPool`). The
    request's deadline covers all of it; once the answer has started, a deadline or a worker death can only cut
    the connection, which the client sees as a truncated body (a deadline cut is a reset, at once).
    """

    def __init__(
        self,
        state: ServerState,
        job: WorkerRequest,
        *,
        media_type: str,
        deadline: float,
        fault: str | None,
        problem: bool,
    ) -> None:
        self._state, self._job, self._media_type = state, job, media_type
        self._deadline, self._fault, self._problem = deadline, fault, problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer, unless the client leaves first: then the work is cancelled and the pool settles the worker."""
        work = asyncio.ensure_future(self._respond(scope, receive, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._state.pool.query(self._job.to_json(), self._deadline)
        except (QueryFailed, QueryTimeout, WorkersBusy, WorkerDied) as exc:
            await _error_response(_error_for(self._state, exc), problem=self._problem)(scope, receive, send)
            return
        try:
            async with asyncio.timeout_at(self._deadline):
                transport = lendable_transport(scope)
                if answer.handoff and transport is not None:
                    await self._hand_off(answer, send, transport)
                elif self._fault is None:
                    await self._relay(answer, send)
                elif self._fault == "drip":
                    await drip_head(connection_of(scope), self._media_type)
                else:
                    await self._send_faulted(b"".join([p async for p in answer.chunks()]), send)
        except TimeoutError:
            msg = f"the deadline of {self._state.deadline:g} s passed while the answer was being sent"
            log.warning("response cut: %s", msg)
            reset(connection_of(scope))
            raise ResponseCut(msg) from None
        except WorkerDied:
            msg = "the query worker died while its answer was being sent"
            log.warning("response cut: %s", msg)
            raise ResponseCut(msg) from None
        finally:
            answer.close()

    def _headers(self, answer: Answer) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", self._media_type.encode())]
        if answer.gzipped:
            headers.append((b"content-encoding", b"gzip"))
        return [*headers, (b"vary", b"accept-encoding")]

    async def _hand_off(self, answer: Answer, send: Send, transport: asyncio.Transport) -> None:
        """The headers (no length: the body is one chunk), then the worker writes the body into the socket."""
        await send({"type": "http.response.start", "status": 200, "headers": self._headers(answer)})
        try:
            written = await answer.hand_off(await socket_when_flushed(transport))
        except ConnectionResetError:
            written = False
        if not written:
            msg = "the client went away while its answer was being sent"
            raise ResponseCut(msg)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay(self, answer: Answer, send: Send) -> None:
        headers = [*self._headers(answer), (b"content-length", str(answer.length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if not answer.length:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        async for piece in answer.chunks():  # a small answer: one piece, the message ended with it
            await send({"type": "http.response.body", "body": piece, "more_body": bool(answer.left)})
            if answer.left:
                await asyncio.sleep(0)  # let the loop see a lost connection (and serve others) between pieces

    async def _send_faulted(self, body: bytes, send: Send) -> None:
        assert self._fault is not None
        pieces, reset = _faulted(self._fault, body, arrow=self._job.format == "arrow")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", self._media_type.encode())]}
        )
        for piece in pieces:
            if self._fault == "slow":
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if reset:
            msg = "injected fault: connection reset mid-body"
            raise InjectedReset(msg)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _prelude(state: ServerState) -> str | None:
    """Latency, rate limit and status faults shared by both query endpoints; returns a body fault."""
    if state.latency_ms:
        await asyncio.sleep(state.latency_ms / 1000)
    retry_after = state.rate.take(state.read_token)
    if retry_after:
        raise ApiError(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
    fault = state.faults.draw()
    if fault in STATUS_FAULTS:
        if fault == "429":
            raise ApiError(429, "injected fault: too many requests", {"Retry-After": "1"})
        if fault == "401":
            raise ApiError(401, "injected fault: invalid read token")
        raise ApiError(int(fault), f"injected fault: {fault}")
    return fault


_BODY_FORMATS: dict[Format, BodyFormat] = {"arrow": "arrow", "csv": "csv"}
_MEDIA = {"arrow": ARROW_MEDIA_TYPE, "csv": "text/csv; charset=utf-8", "json": "application/json"}


async def _query(
    request: Request,
    state: ServerState,
    endpoint: str,
    query: _Query,
    fmt: Format,
    json_body: BodyFormat,
    deadline: float,
) -> Response:
    fault = await _prelude(state)
    state.query_log.append(
        QueryLogEntry(endpoint, query.sql, fmt, query.limit, query.min_timestamp, query.max_timestamp)
    )
    job = WorkerRequest(
        spec=_spec(state, query),
        format=_BODY_FORMATS.get(fmt, json_body),
        gzip=fault is None and _compress(request, state, fmt),
        max_result_bytes=state.max_result_bytes,
        handoff=fault is None and lendable_transport(request.scope) is not None,
    )
    return QueryResponse(  # type: ignore[return-value] # an ASGI response, as Starlette accepts
        state, job, media_type=_MEDIA[fmt], deadline=deadline, fault=fault, problem=_wants_problem(request)
    )


def _deadline(state: ServerState) -> float:
    return asyncio.get_running_loop().time() + state.deadline


async def query_v2(request: Request) -> Response:
    """``POST /v2/query``: the query API of the service and of the official SDK since 4.35."""
    state = _check_token(request)  # before the body is read: no work for whoever lacks the token
    deadline = _deadline(state)
    if "v2" not in state.api_versions:
        raise ApiError(404, "Not Found")
    fmt = _negotiate(request.headers.get("accept"))
    try:
        body = orjson.loads(await _read_body(request, state, deadline))
    except orjson.JSONDecodeError:
        raise ApiError(422, "the request body is not valid JSON") from None
    return await _query(request, state, "v2", _v2_query(body), fmt, "v2_json", deadline)


async def query_v1(request: Request) -> Response:
    """``GET /v1/query``: the older query API, still served, used by SDKs up to 4.34."""
    state = _check_token(request)
    deadline = _deadline(state)
    if "v1" not in state.api_versions:
        raise ApiError(404, "Not Found")
    fmt = _negotiate(request.headers.get("accept"))
    query, rows = _v1_query(request)
    return await _query(request, state, "v1", query, fmt, "v1_json_rows" if rows else "v1_json", deadline)


def read_token_info(request: Request) -> Response:
    """``GET /v1/read-token-info``: which project the token reads."""
    state = _check_token(request)
    return JSONResponse(
        {
            "token_id": "00000000-0000-4000-8000-000000000001",
            "organization_id": "00000000-0000-4000-8000-000000000002",
            "organization_subscription_plan": "personal",
            "project_id": "00000000-0000-4000-8000-000000000003",
            "organization_name": state.organization_name,
            "project_name": state.project_name,
            "expires_at": None,
            "spending_cap_reached_at": None,
            "organization_analytics_enabled": False,
        }
    )


def info(request: Request) -> Response:
    """``GET /v1/info``: the project a token belongs to, as ``logfire.configure()`` asks with the write token."""
    state = _state(request)
    if not state.write_token or not hmac.compare_digest(token_of(request).encode(), state.write_token.encode()):
        _check_token(request)  # the read token is accepted here too
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {"project_name": state.project_name, "project_url": f"{base}/{state.organization_name}/{state.project_name}"}
    )


def schemas(request: Request) -> Response:
    """``GET /v1/schemas``: the tables and their columns, as logfire-mcp reads them."""
    _check_token(request)
    tables = [
        {
            "name": name,
            "description": "",
            "schema": {
                f.name: {"data_type": sql_type_name(f.type), "nullable": f.nullable, "description": ""}
                for f in sorted(schema, key=lambda f: f.name)
            },
        }
        for name, schema in (("records", RECORDS_SCHEMA), ("metrics", METRICS_SCHEMA))
    ]
    return JSONResponse({"tables": tables})


def _wants_problem(request: Request) -> bool:
    return "application/problem+json" in request.headers.get("accept", "").lower()


def _error_response(exc: ApiError, *, problem: bool) -> Response:
    """Logfire's ``{"detail": ...}``, or RFC 9457 problem details when the client prefers them."""
    if problem:
        body: dict[str, Any] = {
            "type": f"https://logfire-io.invalid/problems/{exc.status}",
            "title": _TITLES.get(exc.status, "Error"),
            "status": exc.status,
            "detail": exc.detail,
            "retryable": exc.status in {429, 502, 503, 504},
            "error_details": {"detail": exc.detail},
        }
        if "Retry-After" in exc.headers:
            body["retry_after"] = float(exc.headers["Retry-After"])
        return Response(orjson.dumps(body), exc.status, exc.headers, media_type="application/problem+json")
    return JSONResponse({"detail": exc.detail}, exc.status, exc.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(exc, problem=_wants_problem(request))


_TITLES = {
    400: "Query failed",
    401: "Unauthorized",
    404: "Not Found",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Content Too Large",
    422: "Invalid request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the query workers in the server's event loop, and stop them when it stops."""
    state: ServerState = app.state.logfire
    try:
        await state.pool.start()
        if state.on_ready is not None:
            state.on_ready()
        yield
    finally:
        await state.pool.close()


def create_app(state: ServerState) -> Starlette:
    """The Starlette application of one local Logfire server."""
    routes = [
        Route("/v2/query", query_v2, methods=["POST"]),
        Route("/v1/query", query_v1, methods=["GET"]),
        Route("/v1/read-token-info", read_token_info, methods=["GET"]),
        Route("/api/read-token-info", read_token_info, methods=["GET"]),
        Route("/v1/info", info, methods=["GET"]),
        Route("/v1/schemas", schemas, methods=["GET"]),
        project_route(state.organization_name, state.project_name),
        *ingest_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error}, lifespan=_lifespan)
    app.state.logfire = state
    return app
