"""OTLP/HTTP receivers: ``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics``, answering as an OTLP collector does.

A request is checked (write token, size, encoding), decoded and mapped (:mod:`logfire_io.server.ingest`), and
stored durably (:mod:`logfire_io.server.store`) before the 200 goes out, so an acknowledged batch survives a
crash and is visible to the next query. The answer is the signal's ``Export*ServiceResponse`` in the request's
encoding, with ``partial_success`` when some items were rejected. Errors are ``{"detail": ...}`` JSON with the
status a collector uses: 400 malformed or an unsupported ``Content-Encoding``, 401 token, 413 too large, 415
unsupported ``Content-Type``, 503 store failure (the SDK retries 503). No token is ever written to a message or a
log.

Encodings: ``gzip`` and ``deflate`` (zlib), the two the OTLP exporters of the Python SDK can send
(``OTEL_EXPORTER_OTLP_COMPRESSION``). The OpenTelemetry Collector (``config/confighttp/compression.go``) also
takes ``zstd``, ``snappy`` and ``lz4``, which need packages this server does not depend on; like the Collector
for an encoding it has not enabled, it answers those with 400 ``unsupported Content-Encoding`` (the Collector's
receiver answers 415 only for a ``Content-Type`` it does not take).
"""

from __future__ import annotations

import hmac
import time
import zlib
from typing import TYPE_CHECKING

import pyarrow as pa
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from logfire_io.server.ingest import MalformedRequest, Signal, decode, map_request, response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from logfire_io.server.app import ServerState

__all__ = ["IngestError", "ingest_routes", "token_of"]

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


class IngestError(Exception):
    """An error answer of a receiver: status and a detail for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def token_of(request: Request) -> str:
    """The token in the ``Authorization`` header, raw or ``Bearer``, or ``""``."""
    given = request.headers.get("authorization", "").strip()
    return given[7:].strip() if given[:7].lower() == "bearer " else given


def _same(given: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(given.encode(), token.encode())


def _check_write_token(request: Request, state: ServerState) -> None:
    given = token_of(request)
    if not given:
        msg = "missing write token: send it in the `Authorization` header (logfire.configure(token=srv.write_token))"
        raise IngestError(401, msg)
    if _same(given, state.read_token):
        raise IngestError(401, "that is the read token; exporting telemetry needs the write token (`srv.write_token`)")
    if not _same(given, state.write_token):
        raise IngestError(401, "invalid write token")


def _wants_json(request: Request) -> bool:
    media = request.headers.get("content-type", _PROTOBUF).split(";")[0].strip().lower()
    if media not in (_PROTOBUF, _JSON):
        msg = f"unsupported Content-Type {media!r}: send {_PROTOBUF} (OTLP/protobuf) or {_JSON} (OTLP/JSON)"
        raise IngestError(415, msg)
    return media == _JSON


async def _raw_body(request: Request, limit: int) -> bytes:
    """The request body as sent, refused (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = f"the body is larger than the server's limit of {limit:,} bytes; export smaller batches"
    if declared.isdigit() and int(declared) > limit:
        raise IngestError(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""zlib window bits per Content-Encoding: gzip framing, or zlib framing (what the SDK's ``deflate`` sends)."""


def _inflated(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decompressed, refusing more than ``limit`` bytes once decompressed."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in _WBITS:
        msg = f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or an uncompressed body"
        raise IngestError(400, msg)
    inflate = zlib.decompressobj(wbits=_WBITS[encoding])
    try:
        body = inflate.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise IngestError(400, f"the {encoding} body does not decompress: {exc}") from None
    if len(body) > limit or inflate.unconsumed_tail:
        msg = f"the decompressed body is larger than the server's limit of {limit:,} bytes; export smaller batches"
        raise IngestError(413, msg)
    if not inflate.eof:
        raise IngestError(400, f"the {encoding} body is truncated")
    return body


def _store_batch(signal: Signal, raw: bytes, encoding: str, state: ServerState, *, as_json: bool) -> Response:
    """Decode, map and durably store one export request (CPU and disk work: run off the event loop)."""
    assert state.store is not None
    body = _inflated(raw, encoding, state.max_ingest_bytes)
    try:
        message = decode(signal, body, as_json=as_json)
    except MalformedRequest as exc:
        raise IngestError(400, str(exc)) from None
    try:
        mapped = map_request(signal, message, received_us=time.time_ns() // 1000)
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise IngestError(400, f"a value does not fit Logfire's columns: {exc}") from None
    try:
        state.store.append(mapped.table, mapped.rows)
    except OSError as exc:
        raise IngestError(503, f"the batch could not be stored ({exc.strerror}); retry later") from None
    return Response(response(signal, mapped, as_json=as_json), 200, media_type=_JSON if as_json else _PROTOBUF)


def _receiver(signal: Signal) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        state: ServerState = request.app.state.logfire
        try:
            _check_write_token(request, state)  # before the body is read
            if state.store is None:
                raise IngestError(404, "this server does not store telemetry")
            as_json = _wants_json(request)
            raw = await _raw_body(request, state.max_ingest_bytes)
            encoding = request.headers.get("content-encoding", "identity")
            return await run_in_threadpool(_store_batch, signal, raw, encoding, state, as_json=as_json)
        except IngestError as exc:
            return JSONResponse({"detail": exc.detail}, exc.status)

    receive.__name__ = receive.__qualname__ = f"receive_{signal}"
    receive.__doc__ = f"``POST /v1/{signal}``: store one OTLP export request of {signal}."
    return receive


def ingest_routes() -> list[Route]:
    """The three OTLP/HTTP routes, at the host root as the SDK's exporters expect."""
    signals: tuple[Signal, ...] = ("traces", "logs", "metrics")
    return [Route(f"/v1/{signal}", _receiver(signal), methods=["POST"]) for signal in signals]
