"""The client's network backends: the overall deadline, larger socket reads, and a cut that wakes blocked threads.

httpx has per-phase timeouts only: a server that sends its headers a byte at a time, each within the read
timeout, is never cut off. The body is read by :class:`~logfire_io._body.BodyReader`, which checks the deadline
itself; before that, every socket operation (connect, write, read) of the client's connection pools is bounded
here by what is left of the deadline. The pools' network backends are wrapped (httpx offers no option for it),
which keeps proxies, ``verify`` and everything else of the transport as configured; the deadline reaches them
through a context variable, set around ``send`` in this thread or task.

A read that stops early must stop its request threads at once. Closing the client does not: a socket closed
under a thread blocked in ``recv`` does not wake it, and once its descriptor number is reused by a new
socket, the thread waits on that one, until its read timeout. :func:`cut_sockets` shuts every socket of the
client down instead (which wakes the threads, and tells the server the client went away), connecting ones
too (so connects are made here: httpcore's hide their socket), and keeps the descriptors until
:func:`close_cut_sockets`, called once no request thread runs, so none is reused too early
and none is left to the garbage collector.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpcore
from httpcore._backends.sync import SyncStream

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable, Iterator

    import httpx

__all__ = ["bound_sockets", "close_cut_sockets", "cut_sockets", "deadline", "past"]

READ_SIZE = 1 << 18
"""Bytes asked of the socket per read. httpcore asks 64 KiB, and each read costs a pass through h11 and httpx;
256 KiB received a 10 MB body about 1.5x faster (benchmarks/network.py receive), and larger reads were slower
again (fresh allocations past malloc's mmap threshold)."""
_AT: ContextVar[float | None] = ContextVar("logfire_io_deadline", default=None)


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Bound the socket operations inside the block by ``at`` (``time.monotonic()``)."""
    token = _AT.set(at)
    try:
        yield
    finally:
        _AT.reset(token)


def past(at: float) -> bool:
    """Whether ``at`` has passed."""
    return time.monotonic() >= at


def _bounded(timeout: float | None) -> float | None:
    """``timeout``, shortened to what is left of the deadline; raises once nothing is left."""
    at = _AT.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        msg = "the request's deadline passed"
        raise httpcore.ReadTimeout(msg)
    return left if timeout is None else min(timeout, left)


class _Sockets:
    """The open streams and connecting sockets of one connection pool, and whether its read was cut (thread-safe)."""

    def __init__(self) -> None:
        self._open: set[_Stream] = set()
        self._connecting: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False

    def opened(self, stream: _Stream) -> _Stream:
        """Note a new stream; one connected after the cut is closed at once, failing its request."""
        with self._lock:
            if not self._cut:
                self._open.add(stream)
                return stream
        stream.close_now()
        msg = "the read was stopped"
        raise httpcore.ConnectError(msg)

    @contextmanager
    def connecting(self, sock: socket.socket) -> Iterator[None]:
        """Let :meth:`cut` wake ``sock`` while it connects or shakes hands; refuse to start once cut."""
        with self._lock:
            if self._cut:
                msg = "the read was stopped"
                raise httpcore.ConnectError(msg)
            self._connecting.add(sock)
        try:
            yield
        finally:
            with self._lock:
                self._connecting.discard(sock)

    def closed(self, stream: _Stream) -> bool:
        """Forget a stream its connection closes; False once cut (:meth:`release` closes it later)."""
        with self._lock:
            if self._cut:
                return False
            self._open.discard(stream)
            return True

    def cut(self) -> None:
        """Shut every socket down (blocked threads wake with an end of stream, connects fail); refuse new ones."""
        with self._lock:
            self._cut = True
            streams = list(self._open)
            for sock in self._connecting:  # under the lock: its thread closes it only once it is out of the set
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # Linux fails a connect in progress at once
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Close the sockets kept open by :meth:`cut` (once no thread uses them)."""
        with self._lock:
            streams, self._open = list(self._open), set()
        for stream in streams:
            stream.close_now()


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, sockets: _Sockets) -> None:
        self._stream = stream
        self._sockets = sockets

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, READ_SIZE), _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        if self._sockets.closed(self):
            self._stream.close()

    def close_now(self) -> None:
        with suppress(OSError):
            self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        sock = self._stream.get_extra_info("socket")
        # The TLS socket takes the descriptor over from this one, which a cut then cannot shut down: a duplicate
        # descriptor of the connection lets the cut end the handshake.
        twin = sock.dup() if type(sock) is socket.socket else None
        try:
            with self._sockets.connecting(twin) if twin is not None else nullcontext():
                tls = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout))
        finally:
            if twin is not None:
                twin.close()
        self._sockets.closed(self)  # the TLS stream owns the socket from here on
        return self._sockets.opened(_Stream(tls, self._sockets))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _connect(
    sockets: _Sockets,
    address: tuple[str, int],
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> httpcore.NetworkStream:
    """The ``connect_tcp`` of httpcore's ``SyncBackend``, with the socket known to ``sockets`` while it connects.

    httpcore connects with ``socket.create_connection``, whose socket no other thread can reach: a stopped read
    waited for a hanging connect (a full accept queue, an unreachable host) until the connect timeout.
    """
    try:
        targets = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    error: OSError | None = None
    for family, kind, proto, _, target in targets:
        sock = socket.socket(family, kind, proto)
        try:
            with sockets.connecting(sock):
                sock.settimeout(timeout)
                if local_address is not None:
                    sock.bind((local_address, 0))
                sock.connect(target)
            for option in [*(socket_options or ()), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]:
                sock.setsockopt(*option)
        except OSError as exc:
            sock.close()
            error = error or exc  # the first address's error, as socket.create_connection reports
            continue
        except BaseException:
            sock.close()
            raise
        return SyncStream(sock)
    kind_of_error = httpcore.ConnectTimeout if isinstance(error, TimeoutError) else httpcore.ConnectError
    raise kind_of_error(str(error or "getaddrinfo returned no address")) from error


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend
        self.sockets = _Sockets()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if type(self._backend) is httpcore.SyncBackend:
            stream = _connect(self.sockets, (host, port), _bounded(timeout), local_address, socket_options)
        else:
            stream = self._backend.connect_tcp(host, port, _bounded(timeout), local_address, socket_options)
        return self.sockets.opened(_Stream(stream, self.sockets))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, _bounded(timeout), socket_options)
        return self.sockets.opened(_Stream(stream, self.sockets))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max(max_bytes, READ_SIZE), _bounded(timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _bounded(timeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, _bounded(timeout), local_address, socket_options)
        return _AsyncStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._backend.connect_unix_socket(path, _bounded(timeout), socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _pools(client: httpx.Client | httpx.AsyncClient) -> list[Any]:
    """The httpcore pools of ``client``'s transport and proxy mounts (there is no public way to reach them)."""
    transports = [client._transport, *client._mounts.values()]
    return [pool for transport in transports if (pool := getattr(transport, "_pool", None)) is not None]


def bound_sockets(client: httpx.Client | httpx.AsyncClient) -> None:
    """Wrap the network backends of ``client``'s connection pools (its transport and proxy mounts).

    A transport of the caller's own (``transport=``, ``mounts=``) without an httpcore pool is left as it is: its
    header phase has only the per-phase timeouts, and :func:`cut_sockets` does not reach it.
    """
    for pool in _pools(client):
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
        elif isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(backend, _AsyncBackend):
            pool._network_backend = _AsyncBackend(backend)  # type: ignore[union-attr]


def _sockets(client: httpx.Client) -> list[_Sockets]:
    backends = [getattr(pool, "_network_backend", None) for pool in _pools(client)]
    return [backend.sockets for backend in backends if isinstance(backend, _Backend)]


def cut_sockets(client: httpx.Client) -> None:
    """Stop every request of ``client`` now, from any thread: its sockets are shut down, new connections refused.

    The client cannot send again; call :func:`close_cut_sockets` once no thread is inside a request.
    """
    for sockets in _sockets(client):
        sockets.cut()


def close_cut_sockets(client: httpx.Client) -> None:
    """Close the sockets :func:`cut_sockets` kept open (call once no thread is inside a request of ``client``)."""
    for sockets in _sockets(client):
        sockets.release()
