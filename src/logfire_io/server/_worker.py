"""The query worker processes: a fork server, and the workers it forks, which answer one query at a time.

Started by :class:`logfire_io.server.workers.WorkerPool` as ``python -m logfire_io.server._worker CONFIG FD``.
The whole answer (planning, running, encoding, compressing) happens here, so that the deadline can stop any of
it by killing this process, and so that the HTTP process only relays bytes or, for a large answer, hands this
process the client's socket to write it into directly. The result is collected before anything is sent: its
size is checked against the cap batch by batch, and an error is always a clean ``E`` frame (an HTTP 400), never
a response cut off half-way.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import sys
import zlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from logfire_io.server.encode import encode_csv, encode_v1_json, encode_v2_json
from logfire_io.server.engine import Engine, QueryError
from logfire_io.server.workers import HANDOFF_MIN_BYTES, HEADER, WorkerRequest

__all__ = ["Body", "answer", "fork_server", "serve"]

_GZIP_MIN_BYTES = 1024
_SMALL_WRITE = 64 << 10
_WRITE_BUFFER = 256 << 10
"""Arrow's writer makes many small writes (metadata, bitmaps) between the large ones: those under
``_SMALL_WRITE`` are gathered up to this size or the next large one, so a socket gets few, large writes."""


def _too_large(cap: int) -> QueryError:
    msg = (
        f"the query's result is larger than the server's cap of {cap:,} bytes; select fewer columns or rows "
        "(the cap is `max_result_bytes` / `--max-result-bytes`)"
    )
    return QueryError(msg)


def _collect(engine: Engine, request: WorkerRequest) -> tuple[pa.Table, dict[str, str]]:
    """Plan and run the query, stopping as soon as the batches held pass the result cap.

    A batch's size is its own bytes (``nbytes``): a few rows sliced from a stored batch share its buffers, which
    ``get_total_buffer_size`` would count whole.
    """
    frame, plans = engine.plan(request.spec)
    batches, held = [], 0
    for batch in engine.batches(frame):
        held += batch.nbytes
        if held > request.max_result_bytes:
            raise _too_large(request.max_result_bytes)
        batches.append(batch)
    schema = batches[0].schema if batches else frame.schema()
    if request.spec.explain:
        plans["physical_plan_with_metrics"] = plans["physical_plan"]
    return pa.Table.from_batches(batches, schema), plans


def _write_arrow(table: pa.Table, sink: pa.NativeFile) -> None:
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _write_all(fd: int, *pieces: bytes | memoryview | pa.Buffer) -> None:
    """Write all of ``pieces``, in as few calls as the kernel allows, waiting whenever ``fd`` is full.

    ``fd`` is a pipe, or a client's socket (non-blocking: the HTTP process shares the flag).
    """
    views = [memoryview(piece).cast("B") for piece in pieces if len(piece)]
    while views:
        try:
            written = os.writev(fd, views)
        except BlockingIOError:
            poller = select.poll()  # not select(): it cannot wait on a descriptor numbered 1024 or more
            poller.register(fd, select.POLLOUT)
            poller.poll()
            continue
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if written:
            views[0] = views[0][written:]


class _FdFile:
    """A file over a descriptor, for :class:`pyarrow.PythonFile`, so Arrow's writer writes straight to a socket.

    It starts with ``head`` and gathers small writes (see ``_WRITE_BUFFER``). Once a write has failed (the
    client went away), every later one fails at once: Arrow still writes its end-of-stream as it closes.
    Closing writes nothing; :meth:`flush` ends a successful answer.
    """

    closed = False

    def __init__(self, fd: int, head: bytes) -> None:
        self._fd = fd
        self._pending = bytearray(head)
        self._broken = False

    def write(self, data: pa.Buffer) -> int:
        if self._broken:
            raise BrokenPipeError(errno.EPIPE, "the client went away")
        size = len(data)
        if size < _SMALL_WRITE:
            self._pending += data
            if len(self._pending) >= _WRITE_BUFFER:
                self._send()
        else:
            self._send(data)
        return size

    def flush(self, tail: bytes = b"") -> None:
        """Write what is gathered, then ``tail``."""
        self._send(tail)

    def _send(self, *pieces: bytes | pa.Buffer) -> None:
        try:
            _write_all(self._fd, self._pending, *pieces)
        except OSError:
            self._broken = True
            raise
        self._pending = bytearray()

    def close(self) -> None:
        """The descriptor is not ours to close."""


@dataclass(frozen=True)
class Body:
    """A finished answer within the cap: its bytes, or a table that is written as an Arrow stream when sent.

    An Arrow answer is never copied into memory first: its exact length comes from a dry run, and it is written
    straight to the pipe or the client's socket, in one pass (it is most of a bulk read's bytes).
    """

    content: bytes | pa.Buffer | pa.Table
    length: int
    gzipped: bool

    def write(self, fd: int, head: bytes = b"", tail: bytes = b"") -> None:
        """Write the body to ``fd``, between ``head`` and ``tail`` (a frame header, a chunk's framing)."""
        if not isinstance(self.content, pa.Table):
            _write_all(fd, head, self.content, tail)  # one call for a small answer: one wake-up of the reader
            return
        out = _FdFile(fd, head)
        _write_arrow(self.content, pa.PythonFile(out, mode="w"))
        out.flush(tail)


def _encoded(table: pa.Table, plans: dict[str, str], body_format: str) -> bytes | pa.Buffer:
    if body_format == "arrow":
        sink = pa.BufferOutputStream()
        _write_arrow(table, sink)
        return sink.getvalue()
    if body_format == "v2_json":
        return encode_v2_json(table, plans)
    if body_format == "csv":
        return encode_csv(table)
    return encode_v1_json(table, rows=body_format == "v1_json_rows")


def _check_size(length: int, cap: int) -> None:
    if length > cap:
        raise _too_large(cap)


def answer(engine: Engine, request: WorkerRequest) -> Body:
    """The response body for ``request``, gzipped when asked (never when it is under 1 KiB).

    Raises
    ------
    QueryError
        The query failed, or its result (or the encoded body) is larger than ``max_result_bytes``.
    """
    table, plans = _collect(engine, request)
    if request.format == "arrow" and not request.gzip:
        counter = pa.MockOutputStream()
        _write_arrow(table, counter)
        _check_size(counter.size(), request.max_result_bytes)
        return Body(table, counter.size(), gzipped=False)
    content = _encoded(table, plans, request.format)
    _check_size(len(content), request.max_result_bytes)
    gzipped = request.gzip and len(content) >= _GZIP_MIN_BYTES
    if gzipped:
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip header; level 1, as cheap as possible
        content = compressor.compress(content) + compressor.flush()
    return Body(content, len(content), gzipped=gzipped)


def _read_exactly(fd: int, size: int) -> bytes:
    pieces, missing = [], size
    while missing:
        piece = os.read(fd, missing)
        if not piece:
            raise EOFError
        pieces.append(piece)
        missing -= len(piece)
    return b"".join(pieces)


def _hand_off(body: Body, requests: socket.socket, answers: int) -> None:
    """Offer ``body`` to be written straight into the client's socket, and write it there if the server says so.

    The server answers the offer with the socket (``F``, attached) once the headers have left, or with ``X``
    when the client has gone. The body is written as one HTTP/1.1 chunk (the server sent the headers without a
    length and ends the message itself); ``D`` then tells the server it is done, ``C`` that the client went away
    part-way.
    """
    _write_all(answers, HEADER.pack(b"Z" if body.gzipped else b"S", body.length))
    message, fds, _, _ = socket.recv_fds(requests, 1, 1)
    if not message:
        raise EOFError
    if not fds:
        return
    outcome = b"D"
    try:
        body.write(fds[0], b"%x\r\n" % body.length, b"\r\n")
    except OSError:  # the client reset the connection
        outcome = b"C"
    finally:
        os.close(fds[0])
    _write_all(answers, HEADER.pack(outcome, 0))


def serve(engine: Engine, requests: socket.socket, answers: int) -> None:
    """Answer requests read from ``requests`` on ``answers`` until the server closes its end."""
    _write_all(answers, HEADER.pack(b"R", 0))
    while True:
        try:
            _, length = HEADER.unpack(_read_exactly(requests.fileno(), HEADER.size))
            request = WorkerRequest.from_json(_read_exactly(requests.fileno(), length))
        except EOFError:
            return
        try:
            body = answer(engine, request)
        except QueryError as exc:
            message = str(exc).encode()
            _write_all(answers, HEADER.pack(b"E", len(message)), message)
            continue
        if request.handoff and body.length >= HANDOFF_MIN_BYTES:
            _hand_off(body, requests, answers)
            continue
        body.write(answers, HEADER.pack(b"G" if body.gzipped else b"B", body.length))


def fork_server(config: dict[str, Any], control: socket.socket) -> None:
    """Load the tables once, then fork a worker for each request on ``control`` until it closes.

    A request is one byte with the worker's two ends attached (its request socket and its answer pipe); the
    answer is the worker's pid (8 bytes).
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
                serve(engine, socket.socket(fileno=fds[0]), fds[1])
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        control.sendall(pid.to_bytes(8, "big"))


if __name__ == "__main__":
    fork_server(json.loads(sys.argv[1]), socket.socket(fileno=int(sys.argv[2])))
