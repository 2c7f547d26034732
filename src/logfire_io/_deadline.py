"""The overall deadline while a request is sent and its status line and headers arrive; larger socket reads.

httpx has per-phase timeouts only: a server that sends its headers a byte at a time, each within the read
timeout, is never cut off. The body is read by :class:`~logfire_io._body.BodyReader`, which checks the deadline
itself; before that, every socket operation (connect, write, read) of the client's connection pools is bounded
here by what is left of the deadline. The pools' network backends are wrapped (httpx offers no option for it),
which keeps proxies, ``verify`` and everything else of the transport as configured; the deadline reaches them
through a context variable, set around ``send`` in this thread or task.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable, Iterator

    import httpx

__all__ = ["bound_sockets", "deadline", "past"]

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


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, READ_SIZE), _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, _bounded(timeout), local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_unix_socket(path, _bounded(timeout), socket_options))

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


def bound_sockets(client: httpx.Client | httpx.AsyncClient) -> None:
    """Wrap the network backends of ``client``'s connection pools (its transport and proxy mounts).

    A transport of the caller's own (``transport=``, ``mounts=``) without an httpcore pool is left as it is: its
    header phase has only the per-phase timeouts.
    """
    transports = [client._transport, *client._mounts.values()]  # no public way to reach the pools
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
        elif isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(backend, _AsyncBackend):
            pool._network_backend = _AsyncBackend(backend)  # type: ignore[union-attr]
