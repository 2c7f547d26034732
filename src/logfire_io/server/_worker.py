"""The query worker process: reads QuerySpecs from stdin, writes framed answers to stdout.

Started by :class:`logfire_io.server.workers.WorkerPool` as ``python -m logfire_io.server._worker CONFIG``.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import pyarrow as pa

from logfire_io.server.engine import Engine, QueryError, QuerySpec
from logfire_io.server.workers import HEADER, write_frame

__all__ = ["serve"]


class _FrameSink:
    """A file-like target for pyarrow's IPC writer that emits one ``D`` frame per flushed batch."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._pending = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self._pending += data
        return len(data)

    def flush(self) -> None:
        pass

    def emit(self) -> None:
        if self._pending:
            write_frame(self._out, b"D", self._pending)
            self._pending = bytearray()


def serve(config: dict[str, Any]) -> None:
    engine = Engine(config["paths"], memory_limit=config["memory_limit"])
    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    write_frame(out, b"R")
    while header := stdin.read(HEADER.size):
        _, length = HEADER.unpack(header)
        fields = json.loads(stdin.read(length))
        spec = QuerySpec(**{**fields, "environments": fields["environments"] and tuple(fields["environments"])})
        try:
            frame, plans = engine.plan(spec)
            batches = engine.batches(frame)
            first = next(batches, None)
        except QueryError as exc:
            write_frame(out, b"E", str(exc).encode())
            continue
        if spec.explain:
            plans["physical_plan_with_metrics"] = plans["physical_plan"]
        write_frame(out, b"S", json.dumps(plans).encode())
        sink = _FrameSink(out)
        writer = pa.ipc.new_stream(sink, first.schema if first is not None else frame.schema())
        try:
            for batch in [first] if first is not None else []:
                writer.write_batch(batch)
                sink.emit()
            for batch in batches:
                writer.write_batch(batch)
                sink.emit()
        except QueryError as exc:
            write_frame(out, b"E", str(exc).encode())
            continue
        writer.close()
        sink.emit()
        write_frame(out, b"Z")


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
