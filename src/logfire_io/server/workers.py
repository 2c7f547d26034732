"""Query worker processes: each runs one query at a time, and is killed if it overruns its deadline.

DataFusion offers no way to cancel a running query (an aggregation keeps its thread busy until it finishes),
so the only real deadline is a process boundary. The HTTP process never runs DataFusion itself; it sends a
:class:`~logfire_io.server.engine.QuerySpec` to a free worker over a pipe and reads back framed messages:

``S`` (planned; JSON plans), ``D`` (a piece of the Arrow IPC stream), ``Z`` (done), ``E`` (error; text).

A worker that misses the deadline, or whose reader goes away mid-stream, is killed and replaced.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["HEADER", "QueryTimeout", "WorkerDied", "WorkerPool", "WorkersBusy"]

HEADER = struct.Struct(">cI")


class QueryTimeout(Exception):
    """Raised when a query runs past its deadline (its worker has been killed)."""


class WorkerDied(Exception):
    """Raised when a worker exits mid-query (for example killed by the operating system for memory)."""


class WorkersBusy(Exception):
    """Raised when no worker frees up before the request's deadline."""


def write_frame(out: IO[bytes], kind: bytes, payload: bytes | bytearray | memoryview = b"") -> None:
    """Write one framed message and flush it."""
    out.write(HEADER.pack(kind, len(payload)))
    out.write(payload)
    out.flush()


class _Worker:
    """One worker process and a deadline-aware reader of its frames."""

    def __init__(self, config: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logfire_io.server._worker", config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = bytearray()

    def _fill(self, size: int, deadline: float) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise QueryTimeout
            chunk = os.read(fd, max(1 << 16, size - len(self._buffer)))
            if not chunk:
                raise WorkerDied
            self._buffer += chunk

    def read_frame(self, deadline: float) -> tuple[bytes, bytes]:
        self._fill(HEADER.size, deadline)
        kind, length = HEADER.unpack_from(self._buffer)
        self._fill(HEADER.size + length, deadline)
        payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return kind, payload

    def send(self, spec: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        write_frame(self.proc.stdin, b"Q", json.dumps(spec).encode())

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class QueryStream:
    """The answer of one query: its plans, then the Arrow IPC stream in pieces.

    Iterate it to get the pieces; the worker goes back to the pool when the stream ends. ``close()`` abandons
    the rest (the HTTP client went away): the worker finishes the query in the background and is reused, or is
    replaced if it overruns the deadline. Reads of the worker's pipe are serialized by a lock, so an abandoning
    ``close()`` from the event loop never races a read still running in a thread.
    """

    def __init__(self, pool: WorkerPool, worker: _Worker, deadline: float, plans: dict[str, str]) -> None:
        self._pool, self._worker, self._deadline, self.plans = pool, worker, deadline, plans
        self._lock = threading.Lock()
        self._finished = False
        self._abandoned = False

    def _next_frame(self) -> tuple[bytes, bytes] | None:
        """The next frame, or None once the stream is finished or abandoned; settles the worker at the end."""
        with self._lock:
            if self._finished or self._abandoned:
                return None
            try:
                kind, payload = self._worker.read_frame(self._deadline)
            except (QueryTimeout, WorkerDied):
                self._finished = True
                self._pool.replace(self._worker)
                raise
            if kind != b"D":
                self._finished = True
                self._pool.release(self._worker)
            return kind, payload

    def __iter__(self) -> Iterator[bytes]:
        while (frame := self._next_frame()) is not None:
            kind, payload = frame
            if kind == b"D":
                yield payload
            elif kind == b"Z":
                return
            else:
                raise _query_error(payload)

    def read_all(self) -> bytes:
        """The whole Arrow IPC stream."""
        return b"".join(self)

    def close(self) -> None:
        """Abandon the rest of the stream without blocking; the worker drains it in the background."""
        if not self._finished and not self._abandoned:
            self._abandoned = True
            threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            try:
                while self._worker.read_frame(self._deadline)[0] == b"D":
                    pass
            except (QueryTimeout, WorkerDied, OSError):
                self._pool.replace(self._worker)
                return
            self._pool.release(self._worker)


def _query_error(payload: bytes) -> Exception:
    from logfire_io.server.engine import QueryError

    return QueryError(payload.decode("utf-8", "replace"))


class WorkerPool:
    """A fixed number of query workers over the same memory-mapped tables.

    Parameters
    ----------
    paths
        Table name to Arrow IPC file, as :class:`~logfire_io.server.engine.Engine` takes them.
    size
        Number of worker processes, so the number of queries that run at once.
    memory_limit
        Bytes of operator memory each worker's DataFusion may use.
    """

    def __init__(self, paths: dict[str, str], *, size: int, memory_limit: int) -> None:
        self._config = json.dumps({"paths": paths, "memory_limit": memory_limit})
        self._free: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        worker = _Worker(self._config)
        with self._lock:
            self._all.add(worker)
        threading.Thread(target=self._await_ready, args=(worker,), daemon=True).start()

    def _await_ready(self, worker: _Worker) -> None:
        try:
            kind, _ = worker.read_frame(time.monotonic() + 120)
        except (QueryTimeout, WorkerDied):
            kind = b""
        if kind == b"R" and not self._closed:
            self._free.put(worker)
        else:
            self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def release(self, worker: _Worker) -> None:
        """Return a worker that finished its query cleanly."""
        if self._closed:
            self._discard(worker)
        else:
            self._free.put(worker)

    def replace(self, worker: _Worker) -> None:
        """Kill a worker whose query was abandoned or overran, and start a fresh one."""
        self._discard(worker)
        if not self._closed:
            self._start()

    def submit(self, spec: Any, deadline: float) -> QueryStream:
        """Run ``spec`` (a QuerySpec) on a free worker; returns once the query is planned.

        Raises
        ------
        WorkersBusy
            No worker became free before ``deadline``.
        QueryError
            The query failed to plan or failed on its first batch.
        QueryTimeout
            The deadline passed before the query produced its first batch.
        """
        try:
            worker = self._free.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise WorkersBusy from None
        try:
            worker.send(dataclasses.asdict(spec))
            kind, payload = worker.read_frame(deadline)
        except (QueryTimeout, WorkerDied, OSError):
            self.replace(worker)
            raise
        if kind == b"E":
            self.release(worker)
            raise _query_error(payload)
        return QueryStream(self, worker, deadline, json.loads(payload))

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until at least one worker is ready to take queries."""
        worker = self._free.get(timeout=timeout)
        self._free.put(worker)

    def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
