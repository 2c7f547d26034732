"""The HTTP face of the local server: Logfire's query and metadata endpoints, as Starlette routes.

Endpoints are plain ``def`` functions (Starlette runs them in its thread pool) that validate, raise
:class:`ApiError` for anything wrong, and hand the query to a worker. One exception handler renders every
error as Logfire does: ``{"detail": ...}``, or RFC 9457 problem details when the client prefers them.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import pyarrow as pa
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA, sql_type_name
from logfire_io.server.encode import encode_csv, encode_v1_json, encode_v2_json
from logfire_io.server.engine import Bounds, QueryError, QuerySpec
from logfire_io.server.faults import STATUS_FAULTS, FaultPlan, InjectedReset
from logfire_io.server.receivers import ingest_routes, token_of
from logfire_io.server.workers import QueryStream, QueryTimeout, WorkerDied, WorkerPool, WorkersBusy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from starlette.requests import Request

    from logfire_io.server.store import Store

__all__ = ["ApiError", "QueryLogEntry", "ServerState", "create_app"]

MAX_LIMIT = 10_000
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
_MEDIA_TYPES = {"application/json": "json", ARROW_MEDIA_TYPE: "arrow", "text/csv": "csv"}
Format = Literal["json", "arrow", "csv"]
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


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
    rate_limit: float | None = None
    api_versions: frozenset[str] = frozenset({"v1", "v2"})
    organization_name: str = "local"
    project_name: str = "logfire-io-local"
    query_log: deque[QueryLogEntry] = field(default_factory=lambda: deque(maxlen=1000))
    write_token: str | None = None
    store: Store | None = None
    max_ingest_bytes: int = 64 << 20
    _rate_lock: threading.Lock = field(default_factory=threading.Lock)
    _next_free: float = 0.0

    def take_rate_slot(self) -> float:
        """Seconds to wait before the next request is allowed (0 when it is allowed now)."""
        if not self.rate_limit:
            return 0.0
        with self._rate_lock:
            now = time.monotonic()
            if self._next_free > now + 1.0:
                return self._next_free - now
            self._next_free = max(self._next_free, now) + 1.0 / self.rate_limit
            return 0.0


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.logfire
    return state


def _check_token(request: Request) -> ServerState:
    state = _state(request)
    given = request.headers.get("authorization", "")
    if given[:7].lower() == "bearer ":
        given = given[7:]
    if not given:
        raise ApiError(401, "missing read token: send it in the `Authorization` header")
    if not hmac.compare_digest(given.strip().encode(), state.read_token.encode()):
        if state.write_token and hmac.compare_digest(given.strip().encode(), state.write_token.encode()):
            raise ApiError(401, "that is the write token, which can only export telemetry; queries need the read token")
        raise ApiError(401, "invalid read token")
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
            explain=bool(body.get("explain", False)),
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


def _run(state: ServerState, query: _Query) -> QueryStream:
    spec = QuerySpec(
        sql=query.sql,
        limit=query.limit,
        min_timestamp=_micros(query.min_timestamp),
        max_timestamp=_micros(query.max_timestamp),
        timezone=query.timezone,
        environments=query.environments,
        explain=query.explain,
        bounds=state.bounds,
    )
    with _worker_errors(state):
        return state.pool.submit(spec, time.monotonic() + state.deadline)


@contextmanager
def _worker_errors(state: ServerState) -> Iterator[None]:
    """Map what a query worker can report, while planning or while streaming, to the client's error response."""
    try:
        yield
    except QueryError as exc:
        raise ApiError(400, str(exc)) from None
    except QueryTimeout:
        raise ApiError(400, f"query exceeded the server's deadline of {state.deadline:g} s and was stopped") from None
    except WorkersBusy:
        raise ApiError(503, "every query worker is busy; retry shortly", {"Retry-After": "1"}) from None
    except WorkerDied:
        raise ApiError(500, "the query worker died while running the query (out of memory?)") from None


def _table(state: ServerState, stream: QueryStream) -> pa.Table:
    with _worker_errors(state):
        return pa.ipc.open_stream(stream.read_all()).read_all()


def _apply_fault(fault: str | None, pieces: Iterator[bytes], *, arrow: bool) -> Iterator[bytes]:
    """Pass the body through, cut, truncated or slowed as the fault asks."""
    if fault is None:
        yield from pieces
        return
    body = b"".join(pieces)
    if fault == "slow":
        step = max(1, len(body) // 20)
        for start in range(0, len(body), step):
            time.sleep(0.05)
            yield body[start : start + step]
        return
    cut = body[: -len(_EOS)] if arrow and body.endswith(_EOS) else body[: len(body) // 2]
    if fault == "truncate":
        yield cut
        return
    yield body[: len(body) // 2]
    msg = "injected fault: connection reset mid-body"
    raise InjectedReset(msg)


async def _closing(stream: QueryStream, pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Stream ``pieces`` from a thread; if the client goes away, abandon the query instead of leaking its worker."""
    try:
        async for piece in iterate_in_threadpool(pieces):
            yield piece
    finally:
        stream.close()


def _prelude(request: Request, state: ServerState) -> str | None:
    """Latency, rate limit and status faults shared by both query endpoints; returns a body fault."""
    if state.latency_ms:
        time.sleep(state.latency_ms / 1000)
    wait = state.take_rate_slot()
    if wait:
        raise ApiError(429, "rate limit exceeded", {"Retry-After": str(max(1, round(wait)))})
    fault = state.faults.draw()
    if fault in STATUS_FAULTS:
        if fault == "429":
            raise ApiError(429, "injected fault: too many requests", {"Retry-After": "1"})
        if fault == "401":
            raise ApiError(401, "injected fault: invalid read token")
        raise ApiError(int(fault), f"injected fault: {fault}")
    return fault


def _respond(state: ServerState, endpoint: str, query: _Query, fmt: Format, fault: str | None, encode: Any) -> Response:
    state.query_log.append(
        QueryLogEntry(endpoint, query.sql, fmt, query.limit, query.min_timestamp, query.max_timestamp)
    )
    stream = _run(state, query)
    if fmt == "arrow":
        return StreamingResponse(
            _closing(stream, _apply_fault(fault, iter(stream), arrow=True)), media_type=ARROW_MEDIA_TYPE
        )
    table = _table(state, stream)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    body = encode_csv(table) if fmt == "csv" else encode(table, stream.plans)
    return StreamingResponse(_apply_fault(fault, iter([body]), arrow=False), media_type=media)


def query_v2(request: Request) -> Response:
    """``POST /v2/query``: the query API of the service and of the official SDK since 4.35."""
    state = _check_token(request)
    if "v2" not in state.api_versions:
        raise ApiError(404, "Not Found")
    fmt = _negotiate(request.headers.get("accept"))
    try:
        body = orjson.loads(request.state.body)
    except orjson.JSONDecodeError:
        raise ApiError(422, "the request body is not valid JSON") from None
    query = _v2_query(body)
    fault = _prelude(request, state)
    return _respond(state, "v2", query, fmt, fault, encode_v2_json)


def query_v1(request: Request) -> Response:
    """``GET /v1/query``: the older query API, still served, used by SDKs up to 4.34."""
    state = _check_token(request)
    if "v1" not in state.api_versions:
        raise ApiError(404, "Not Found")
    fmt = _negotiate(request.headers.get("accept"))
    query, rows = _v1_query(request)
    fault = _prelude(request, state)
    return _respond(state, "v1", query, fmt, fault, lambda table, _plans: encode_v1_json(table, rows=rows))


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


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if _wants_problem(request):
        problem: dict[str, Any] = {
            "type": f"https://logfire-io.invalid/problems/{exc.status}",
            "title": _TITLES.get(exc.status, "Error"),
            "status": exc.status,
            "detail": exc.detail,
            "retryable": exc.status in {429, 502, 503, 504},
            "error_details": {"detail": exc.detail},
        }
        if "Retry-After" in exc.headers:
            problem["retry_after"] = float(exc.headers["Retry-After"])
        return Response(orjson.dumps(problem), exc.status, exc.headers, media_type="application/problem+json")
    return JSONResponse({"detail": exc.detail}, exc.status, exc.headers)


_TITLES = {
    400: "Query failed",
    401: "Unauthorized",
    404: "Not Found",
    406: "Not Acceptable",
    422: "Invalid request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _ReadBody:
    """Read the request body before the endpoint runs in the thread pool (``def`` endpoints cannot await it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        scope.setdefault("state", {})["body"] = b"".join(chunks)
        await self.app(scope, receive, send)


def create_app(state: ServerState, *, gzip: bool = True) -> Starlette:
    """The Starlette application of one local Logfire server."""
    routes = [
        Route("/v2/query", query_v2, methods=["POST"]),
        Route("/v1/query", query_v1, methods=["GET"]),
        Route("/v1/read-token-info", read_token_info, methods=["GET"]),
        Route("/api/read-token-info", read_token_info, methods=["GET"]),
        Route("/v1/info", info, methods=["GET"]),
        Route("/v1/schemas", schemas, methods=["GET"]),
        *ingest_routes(),
    ]
    middleware = [Middleware(_ReadBody)]
    if gzip:
        middleware.insert(0, Middleware(GZipMiddleware, minimum_size=1024, compresslevel=1))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={ApiError: _api_error})
    app.state.logfire = state
    return app
