"""Query worker processes: each runs one query at a time, and is killed when its query must stop.

DataFusion offers no way to cancel a running query (an aggregation keeps its thread busy until it finishes),
so the only real way to stop one is a process boundary. The HTTP process never runs DataFusion itself: it
sends a request to an idle worker over a socket and relays the answer the worker sends back on a pipe, one framed
message: ``B`` (the finished response body: Arrow IPC, JSON or CSV), ``G`` (the same, gzipped), or ``E`` (the
query failed; the message).

A large answer does not cross the pipe: when the request allows it (``handoff``), the worker offers it instead
(``S``, or ``Z`` when gzipped, with its length), the HTTP process sends the headers and then passes the client's
socket to the worker (``F``, SCM_RIGHTS), which writes the body into it and reports ``D`` (done) or ``C`` (the
client went away). Each byte of the answer is then written once, by the process that made it, instead of
crossing a pipe and a second process (about half of a bulk read's time on a 2-core machine). An offer the HTTP
process cannot take any more (its client has gone) is declined with ``X``.

The pool lives in the server's event loop and keeps its size whatever happens to a worker: one that dies idle is
noticed at once (its pipe reaches end-of-file) and replaced; one whose query overruns the deadline is killed and
replaced; one whose client went away gets a second to finish, its answer is drained and dropped, and it is
killed and replaced if that takes longer; one that keeps dying while starting is restarted with a growing
back-off and a log line saying so. A query that lands on a worker that has just died is sent once more to a
fresh one: a worker forked after that death, since the others idle at that moment may be dying too (killed
together, say) without it being visible yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from logfire_io.server.engine import QuerySpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "HANDOFF_MIN_BYTES",
    "HEADER",
    "Answer",
    "BodyFormat",
    "QueryFailed",
    "QueryTimeout",
    "WorkerDied",
    "WorkerPids",
    "WorkerPool",
    "WorkerRequest",
    "WorkerStartFailed",
    "WorkersBusy",
]

HEADER = struct.Struct(">cQ")
"""A frame's header: its kind (one byte) and its payload's length."""

HANDOFF_MIN_BYTES = 256 << 10
"""Answers this large or larger are written by the worker into the client's socket when the request allows it;
smaller ones cross the pipe (a hand-off costs two more messages between the processes)."""
_OFFERS = {b"S": False, b"Z": True}
"""A worker's offer to write its answer into the client's socket, and whether that answer is gzipped."""
_PIPE_BYTES = 16 << 20
"""Pipe capacity asked of Linux for worker answers: a typical answer fits, so it crosses in one or two wake-ups
of each side instead of one per 64 KiB (which, on a busy machine, each wait for a time slice)."""
_CHUNK = 16 << 20
"""The largest piece of an answer relayed at once."""
_READ_AHEAD = 64 << 10
"""How much is read when a frame header is awaited (what comes after it stays buffered)."""
_ABANDON_SECONDS = 1.0
"""How long an abandoned query may take to finish and drain before its worker is killed instead."""
_MAX_BACKOFF = 30.0
_START_SECONDS = 120.0
"""How long the fork server may take to start (imports and tables), and a forked worker to say it is ready."""

log = logging.getLogger("logfire_io.server")

BodyFormat = Literal["arrow", "v2_json", "v1_json", "v1_json_rows", "csv"]
"""Which response body a worker produces."""
_SPEC_FIELDS = tuple(f.name for f in fields(QuerySpec))


@dataclass(frozen=True)
class WorkerRequest:
    """What the HTTP process asks of a worker: the query, the body to produce, the cap on its size.

    ``handoff``: the worker may offer to write a large answer straight into the client's socket.
    """

    spec: QuerySpec
    format: BodyFormat
    gzip: bool
    max_result_bytes: int
    handoff: bool = False

    def to_json(self) -> bytes:
        """The request as the worker reads it."""
        spec = {f: getattr(self.spec, f) for f in _SPEC_FIELDS}
        answer = {"format": self.format, "gzip": self.gzip, "cap": self.max_result_bytes, "handoff": self.handoff}
        return json.dumps({**spec, **answer}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> WorkerRequest:
        """The request the HTTP process sent (in the worker)."""
        raw = json.loads(data)
        spec = {k: raw[k] for k in _SPEC_FIELDS}
        if spec["environments"] is not None:
            spec["environments"] = tuple(spec["environments"])
        return cls(QuerySpec(**spec), raw["format"], raw["gzip"], raw["cap"], raw["handoff"])


class WorkerDied(Exception):
    """Raised when a worker exits while running a query (for example killed by the operating system)."""


@dataclass(frozen=True)
class WorkerPids:
    """Process ids of a pool's workers by state (ready for a query, running one, starting), and its fork server.

    The fork server counts as starting until it is ready to fork.
    """

    idle: tuple[int, ...]
    busy: tuple[int, ...]
    starting: tuple[int, ...]
    fork_server: int | None


class WorkersBusy(Exception):
    """Raised when no worker frees up before the request's deadline."""


class QueryTimeout(Exception):
    """Raised when a query runs past the request's deadline (its worker has been killed)."""


class WorkerStartFailed(Exception):
    """Raised when the pool cannot start any worker."""


class QueryFailed(Exception):
    """Raised when the worker reports that the query failed; the message is safe to show the client."""


class _Worker:
    """One worker process (a child of the fork server) and event-loop driven access to its socket and pipe.

    ``born``: the pool's count of forks when this one was asked for, so a retry can tell a fresh worker.
    """

    def __init__(self, pid: int, to_worker: socket.socket, from_worker: int, born: int) -> None:
        self._pid, self._in, self._out, self.born = pid, to_worker, from_worker, born
        for size in (_PIPE_BYTES, 1 << 20):  # above 1 MiB needs privileges; a smaller pipe costs more wake-ups
            with contextlib.suppress(OSError):  # F_SETPIPE_SZ, Linux only
                fcntl.fcntl(self._out, 1031, size)
                break
        to_worker.setblocking(False)
        os.set_blocking(self._out, False)
        self._buffer = bytearray()
        self.dead = self._closed = False
        try:  # a handle on the process itself: signals reach it, never a later process given the same pid
            self._pidfd = os.pidfd_open(pid)
        except OSError:  # already gone
            self._pidfd = -1
            self.dead = True

    @property
    def pid(self) -> int:
        return self._pid

    def alive(self) -> bool:
        """Whether the process still runs (its pidfd is readable once it has exited)."""
        return not self.dead and not select.select([self._pidfd], [], [], 0)[0]

    async def _ready(self, fd: int, *, write: bool) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        (loop.add_writer if write else loop.add_reader)(fd, wake)
        try:
            await future
        finally:
            (loop.remove_writer if write else loop.remove_reader)(fd)

    async def send(self, payload: bytes) -> None:
        """Send one request frame; a closed pipe means the worker is dead."""
        view = memoryview(HEADER.pack(b"Q", len(payload)) + payload)
        while view:
            try:
                view = view[self._in.send(view) :]
            except BlockingIOError:
                await self._ready(self._in.fileno(), write=True)
            except OSError as exc:  # BrokenPipeError: the worker died while idle
                raise WorkerDied from exc

    def reply_to_offer(self, client: int | None) -> None:
        """Answer the worker's offer: the client's socket to write the body into, or None to drop the body."""
        try:
            if client is None:
                self._in.send(b"X")
            else:
                socket.send_fds(self._in, [b"F"], [client])
        except OSError as exc:  # the worker died (a full buffer cannot happen: it is waiting for this byte)
            raise WorkerDied from exc

    async def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes, as soon as any are available (cancelling it never loses bytes)."""
        if self._buffer:
            piece = bytes(self._buffer[:limit])
            del self._buffer[:limit]
            return piece
        while True:
            try:
                piece = os.read(self._out, limit)
            except BlockingIOError:
                await self._ready(self._out, write=False)
                continue
            except OSError as exc:
                raise WorkerDied from exc
            if not piece:
                raise WorkerDied
            return piece

    async def read_exactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes; what has arrived stays buffered if the caller is cancelled meanwhile.

        It reads ahead: a small answer's body comes with its header, in one wake-up.
        """
        while len(self._buffer) < size:
            self._buffer += await self.read_some(max(size - len(self._buffer), _READ_AHEAD))
        piece = bytes(self._buffer[:size])
        del self._buffer[:size]
        return piece

    async def read_header(self) -> tuple[bytes, int]:
        kind, length = HEADER.unpack(await self.read_exactly(HEADER.size))
        return kind, length

    def kill(self) -> None:
        """Kill the process and close its pipes (the fork server reaps it)."""
        if self._closed:
            return
        self._closed = self.dead = True
        with contextlib.suppress(RuntimeError):  # no running loop: closing from another thread
            loop = asyncio.get_running_loop()
            for fd in (self._in.fileno(), self._out):
                loop.remove_reader(fd)
                loop.remove_writer(fd)
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
        self._in.close()
        os.close(self._out)


class _Forker:
    """The fork server: one process that has imported DataFusion and mapped the tables, and forks workers.

    Starting a worker from scratch costs seconds of imports on a busy machine; forking one costs milliseconds,
    so a killed worker is back at once. It forks before any DataFusion session exists (sessions are made on
    first use), and a request carries the new worker's two ends (SCM_RIGHTS); it answers with the pid.
    """

    def __init__(self, config: str) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logfire_io.server._worker", config, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._lock = asyncio.Lock()
        self.ready = False

    async def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            piece = await asyncio.get_running_loop().sock_recv(self._sock, size - len(data))
            if not piece:
                raise WorkerDied
            data += piece
        return data

    async def wait_ready(self) -> None:
        """Wait for the fork server's ``R``; raises WorkerDied if it exits first."""
        await self._read(1)

    async def fork(self, born: int) -> _Worker:
        """A new worker, not yet ready (it sends ``R`` on its pipe when it is); ``born`` is its fork number."""
        async with self._lock:
            to_worker, from_worker = socket.socketpair(), os.pipe()
            try:
                socket.send_fds(self._sock, [b"F"], [to_worker[1].fileno(), from_worker[1]])
                pid = int.from_bytes(await asyncio.shield(self._read(8)), "big")
            except BaseException:
                to_worker[0].close()
                os.close(from_worker[0])
                raise
            finally:  # the fork server holds its own copies once they are sent
                to_worker[1].close()
                os.close(from_worker[1])
        return _Worker(pid, to_worker[0], from_worker[0], born)

    def close(self) -> None:
        """Stop the fork server (its workers are killed by the pool)."""
        self._sock.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class Answer:
    """A worker's answer: ``length`` bytes of body, then the worker goes back to the pool.

    The body is relayed (:meth:`chunks`) or, when ``handoff`` is true, written by the worker straight into the
    client's socket (:meth:`hand_off`).

    Call :meth:`close` when done, whatever happened (it is idempotent): an answer sent to the end has already
    released its worker; a relayed one abandoned part-way is drained in the background (the worker is reused)
    or, when that takes too long, its worker is killed and replaced; an offer never taken is declined (the
    worker is reused); a hand-off stopped part-way kills the worker, which also lets go of the client's socket.
    """

    def __init__(self, pool: WorkerPool, worker: _Worker, length: int, *, gzipped: bool, handoff: bool) -> None:
        self._pool, self._worker, self.length, self.gzipped = pool, worker, length, gzipped
        self.handoff = handoff
        self._left = length
        self._settled = self._handed = False
        if not length and not handoff:
            self._settle(lost=False)

    @property
    def left(self) -> int:
        """Bytes of the body not yet relayed."""
        return self._left

    def _settle(self, *, lost: bool) -> None:
        if not self._settled:
            self._settled = True
            self._pool.give_back(self._worker, lost=lost)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive; the worker is free again before the last piece is handed over."""
        while self._left:
            try:
                piece = await self._worker.read_some(min(self._left, _CHUNK))
            except WorkerDied:
                self._settle(lost=True)
                raise
            self._left -= len(piece)
            if not self._left:
                self._settle(lost=False)
            yield piece

    async def hand_off(self, client: int) -> bool:
        """Have the worker write the body into socket ``client`` as one HTTP/1.1 chunk; wait until it has.

        Returns False when the client went away part-way (the worker is free again either way).
        """
        try:
            self._handed = True
            self._worker.reply_to_offer(client)
            kind, _ = await self._worker.read_header()
        except WorkerDied:
            self._settle(lost=True)
            raise
        self._settle(lost=kind not in {b"D", b"C"})
        return kind == b"D"

    def close(self) -> None:
        """Settle the worker now: released, or abandoned to the pool (see :meth:`WorkerPool.abandon`)."""
        if self._settled:
            return
        self._settled = True
        if not self.handoff:
            self._pool.abandon(self._worker, self._left)
        elif self._handed:
            self._pool.give_back(self._worker, lost=True)
        else:
            self._pool.decline(self._worker)


class WorkerPool:
    """A fixed number of query workers over the same memory-mapped tables, driven from one event loop.

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
        self.size = size
        self._idle: deque[_Worker] = deque()
        self._busy: set[_Worker] = set()
        self._waiters: deque[tuple[asyncio.Future[_Worker], int]] = deque()
        """Queries waiting for a worker, each with the fork number its worker must be newer than (0: any)."""
        self._forks = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures = 0
        self._closed = False
        self._starting: set[_Worker] = set()
        self._live: set[_Worker] = set()
        """Every worker not yet killed, so that closing the pool leaves none behind."""
        self._forker: _Forker | None = None
        self._forker_lock = asyncio.Lock()

    # ------------------------------------------------------------------------------------------ what tests see
    @property
    def pids(self) -> WorkerPids:
        """Process ids of the workers, by state (a snapshot, safe to take from another thread)."""
        forker = self._forker
        return WorkerPids(
            idle=tuple(w.pid for w in list(self._idle)),
            busy=tuple(w.pid for w in list(self._busy)),
            starting=tuple(w.pid for w in list(self._starting))
            + ((forker.proc.pid,) if forker is not None and not forker.ready else ()),
            fork_server=forker.proc.pid if forker is not None else None,
        )

    # ------------------------------------------------------------------------------------------ life cycle
    async def start(self, timeout: float = 120.0) -> None:
        """Start every worker and wait until they are all ready (or until ``timeout``, if at least one is)."""
        for _ in range(self.size):
            self._start_soon(0.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._idle) < self.size and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not self._idle:
            msg = f"no query worker started within {timeout:g} s; see the log above"
            raise WorkerStartFailed(msg)

    def spawn_task(self, coroutine: Any) -> None:
        """Run ``coroutine`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_soon(self, delay: float) -> None:
        if not self._closed:
            self.spawn_task(self._start_one(delay))

    async def _ready_forker(self) -> _Forker:
        """The fork server, (re)started if it is not running."""
        async with self._forker_lock:
            if self._forker is not None and self._forker.proc.poll() is None:
                return self._forker
            if self._forker is not None:
                self._forker.close()
            self._forker = forker = _Forker(self._config)
            try:
                async with asyncio.timeout(_START_SECONDS):
                    await forker.wait_ready()
            except BaseException:
                forker.close()
                self._forker = None
                raise
            forker.ready = True
            return forker

    async def _start_one(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closed:
            return
        worker: _Worker | None = None
        self._forks += 1
        born = self._forks
        try:
            worker = await (await self._ready_forker()).fork(born)
            self._live.add(worker)
            self._starting.add(worker)
            async with asyncio.timeout(_START_SECONDS):
                kind, _ = await worker.read_header()
            if kind != b"R":
                raise WorkerDied
        except (TimeoutError, WorkerDied, OSError) as exc:
            if worker is not None:
                self._starting.discard(worker)
                self._kill(worker)
            self._failures += 1
            backoff = min(_MAX_BACKOFF, 0.25 * 2 ** (self._failures - 1))
            log.warning(
                "a query worker exited while starting (%s; %d failed start(s) in a row); starting another in %.2g s",
                type(exc).__name__,
                self._failures,
                backoff,
            )
            self._start_soon(backoff)
            return
        self._starting.discard(worker)
        self._failures = 0
        self._make_idle(worker)

    def _kill(self, worker: _Worker) -> None:
        self._live.discard(worker)
        worker.kill()

    def _make_idle(self, worker: _Worker) -> None:
        if self._closed:
            self._kill(worker)
            return
        for entry in list(self._waiters):
            waiter, newer_than = entry
            if waiter.done():
                self._waiters.remove(entry)
            elif worker.born > newer_than:
                self._waiters.remove(entry)
                self._busy.add(worker)
                waiter.set_result(worker)
                return
        self._idle.append(worker)
        asyncio.get_running_loop().add_reader(worker._out, self._idle_exited, worker)

    def _idle_exited(self, worker: _Worker) -> None:
        """An idle worker's pipe became readable: it has died (or broke protocol); replace it."""
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._kill(worker)
        log.warning("idle query worker %d exited; starting a replacement", worker.pid)
        self._start_soon(0.0)

    def abandon(self, worker: _Worker, left: int | None) -> None:
        """Take back a worker whose client went away: ``left`` bytes of answer unread (None: not even the header).

        Most abandoned queries are nearly done (a slice of a read the client no longer needs), and a worker is
        much cheaper to drain than to restart, so the answer is read and dropped in the background; a query
        that is not finished within a second is stopped by killing its worker.
        """
        self.spawn_task(self._drain(worker, left))

    def decline(self, worker: _Worker) -> None:
        """Take back a worker whose offer to write into the client's socket will not be taken."""
        try:
            worker.reply_to_offer(None)
        except WorkerDied:
            self.give_back(worker, lost=True)
            return
        self.give_back(worker, lost=False)

    async def _drain(self, worker: _Worker, left: int | None) -> None:
        try:
            async with asyncio.timeout(_ABANDON_SECONDS):
                if left is None:
                    kind, left = await worker.read_header()
                    if kind in _OFFERS:
                        self.decline(worker)
                        return
                while left:
                    left -= len(await worker.read_some(min(left, _CHUNK)))
        except (TimeoutError, WorkerDied):
            self.give_back(worker, lost=True)
            return
        self.give_back(worker, lost=False)

    def give_back(self, worker: _Worker, *, lost: bool) -> None:
        """Return a worker after a query: to the idle set, or (``lost``) killed and replaced."""
        self._busy.discard(worker)
        if lost or worker.dead:
            self._kill(worker)
            self._start_soon(0.0)
        else:
            self._make_idle(worker)

    async def _acquire(self, newer_than: int = 0) -> _Worker:
        """An idle worker, or the next to become idle, forked after fork number ``newer_than``.

        A retry asks for one newer than the death it retries, and goes first in the queue for it (the fresh
        worker is the replacement of the dead one, which other queries may not take from it).
        """
        loop = asyncio.get_running_loop()
        for worker in [w for w in self._idle if w.born > newer_than]:
            self._idle.remove(worker)
            loop.remove_reader(worker._out)
            if worker.alive():
                self._busy.add(worker)
                return worker
            self._idle_exited(worker)
        waiter: asyncio.Future[_Worker] = loop.create_future()
        (self._waiters.appendleft if newer_than else self._waiters.append)((waiter, newer_than))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a worker just as we were cancelled
                self.give_back(waiter.result(), lost=False)
            raise

    # ------------------------------------------------------------------------------------------ queries
    async def query(self, request: bytes, deadline: float) -> Answer:
        """Run one request (the worker's JSON) on an idle worker; returns once the answer's body is ready.

        ``deadline`` is in the event loop's clock. If the worker turns out to be dead before it answers, the
        request is sent once more to a worker forked since. If the caller is cancelled while the query runs, its
        worker is killed and replaced.

        Raises
        ------
        WorkersBusy
            No worker became idle before ``deadline``.
        QueryTimeout
            The query was still running at ``deadline``; its worker has been killed.
        QueryFailed
            The query failed to plan or run, or its result was over the cap.
        WorkerDied
            Two workers in a row died before answering.
        """
        newer_than = 0
        for attempt in range(2):
            try:
                async with asyncio.timeout_at(deadline):
                    worker = await self._acquire(newer_than)
            except TimeoutError:
                raise WorkersBusy from None
            sent = False
            try:
                async with asyncio.timeout_at(deadline):
                    await worker.send(request)
                    sent = True
                    kind, length = await worker.read_header()
                    message = await worker.read_exactly(length) if kind == b"E" else b""
            except WorkerDied:
                newer_than = self._forks  # its replacement, forked from here on, is the first worker known alive
                self.give_back(worker, lost=True)
                if attempt:
                    raise
                log.warning("query worker %d died before answering; sending the query to a fresh one", worker.pid)
                continue
            except TimeoutError:
                self.give_back(worker, lost=True)
                raise QueryTimeout from None
            except BaseException:  # cancelled: the client went away
                if sent:
                    self.abandon(worker, None)
                else:  # a request cut half-way would leave the worker waiting for the rest
                    self.give_back(worker, lost=True)
                raise
            if kind == b"E":
                self.give_back(worker, lost=False)
                raise QueryFailed(message.decode("utf-8", "replace"))
            return Answer(self, worker, length, gzipped=_OFFERS.get(kind, kind == b"G"), handoff=kind in _OFFERS)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    async def close(self) -> None:
        """Stop every worker, the fork server and every background task."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for waiter, _ in self._waiters:
            waiter.cancel()
        self.terminate()

    def terminate(self) -> None:
        """Kill whatever processes are left, from any thread (the event loop may be gone)."""
        self._closed = True
        self._idle.clear()
        self._busy.clear()
        for worker in list(self._live):
            self._kill(worker)
        if self._forker is not None:
            self._forker.close()
            self._forker = None
