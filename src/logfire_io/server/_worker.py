"""The query worker processes: a fork server, and the workers it forks, which answer one query at a time.

Started by :class:`logfire_io.server.workers.WorkerPool` as ``python -m logfire_io.server._worker CONFIG FD``.
The whole answer (planning, running, encoding, compressing) happens here, so that the deadline can stop any of
it by killing this process, and so that the HTTP process only relays bytes. The result is collected before
anything is sent: its size is checked against the cap batch by batch, and an error is always a clean ``E``
frame (an HTTP 400), never a response cut off half-way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import zlib
from typing import Any

import pyarrow as pa

from logfire_io.server.encode import encode_csv, encode_v1_json, encode_v2_json
from logfire_io.server.engine import Engine, QueryError
from logfire_io.server.workers import HEADER, WorkerRequest

__all__ = ["answer", "fork_server", "serve"]

_GZIP_MIN_BYTES = 1024


def _too_large(cap: int) -> QueryError:
    msg = (
        f"the query's result is larger than the server's cap of {cap:,} bytes; select fewer columns or rows "
        "(the cap is `max_result_bytes` / `--max-result-bytes`)"
    )
    return QueryError(msg)


def _collect(engine: Engine, request: WorkerRequest) -> tuple[pa.Table, dict[str, str]]:
    """Plan and run the query, stopping as soon as the batches held pass the result cap."""
    frame, plans = engine.plan(request.spec)
    batches, held = [], 0
    for batch in engine.batches(frame):
        held += batch.get_total_buffer_size()
        if held > request.max_result_bytes:
            raise _too_large(request.max_result_bytes)
        batches.append(batch)
    schema = batches[0].schema if batches else frame.schema()
    if request.spec.explain:
        plans["physical_plan_with_metrics"] = plans["physical_plan"]
    return pa.Table.from_batches(batches, schema), plans


def _arrow_stream(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches():
            writer.write_batch(batch)
    return sink.getvalue()


def answer(engine: Engine, request: WorkerRequest) -> tuple[bytes | pa.Buffer, bool]:
    """The response body for ``request``, and whether it is gzipped (never when it is under 1 KiB).

    Raises
    ------
    QueryError
        The query failed, or its result (or the encoded body) is larger than ``max_result_bytes``.
    """
    table, plans = _collect(engine, request)
    body: bytes | pa.Buffer
    if request.format == "arrow":
        body = _arrow_stream(table)
    elif request.format == "v2_json":
        body = encode_v2_json(table, plans)
    elif request.format == "csv":
        body = encode_csv(table)
    else:
        body = encode_v1_json(table, rows=request.format == "v1_json_rows")
    if len(body) > request.max_result_bytes:
        raise _too_large(request.max_result_bytes)
    if request.gzip and len(body) >= _GZIP_MIN_BYTES:
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip header; level 1, as cheap as possible
        return compressor.compress(body) + compressor.flush(), True
    return body, False


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes:
    pieces, missing = [], size
    while missing:
        piece = os.read(fd, missing)
        if not piece:
            raise EOFError
        pieces.append(piece)
        missing -= len(piece)
    return b"".join(pieces)


def serve(engine: Engine, requests: int, answers: int) -> None:
    """Answer requests read from ``requests`` on ``answers`` until the server closes the pipe."""
    _write_all(answers, HEADER.pack(b"R", 0))
    while True:
        try:
            _, length = HEADER.unpack(_read_exactly(requests, HEADER.size))
            request = WorkerRequest.from_json(_read_exactly(requests, length))
        except EOFError:
            return
        try:
            body, gzipped = answer(engine, request)
        except QueryError as exc:
            message = str(exc).encode()
            _write_all(answers, HEADER.pack(b"E", len(message)) + message)
            continue
        _write_all(answers, HEADER.pack(b"G" if gzipped else b"B", len(body)))
        _write_all(answers, body)


def fork_server(config: dict[str, Any], control: socket.socket) -> None:
    """Load the tables once, then fork a worker for each request on ``control`` until it closes.

    A request is one byte with the worker's two pipe ends attached; the answer is the worker's pid (8 bytes).
    Children are reaped by the kernel (SIGCHLD ignored); the server kills them by pidfd.
    """
    engine = Engine(config["paths"], memory_limit=config["memory_limit"])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us itself
    control.sendall(b"R")
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1, 2)
        if not message:
            return
        pid = os.fork()
        if pid == 0:  # the worker
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                serve(engine, *fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        control.sendall(pid.to_bytes(8, "big"))


if __name__ == "__main__":
    fork_server(json.loads(sys.argv[1]), socket.socket(fileno=int(sys.argv[2])))
