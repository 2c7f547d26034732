"""Lending a client's connection to a query worker, so that a large answer is written once, by the worker.

uvicorn gives an ASGI application no access to the connection, so :class:`HandOffProtocol` (uvicorn's h11
protocol, given as ``uvicorn.Config(http=...)``) puts each connection's transport in every request's
``scope["state"]``. The status line and headers still go through uvicorn, without a content-length, so h11
frames the body in chunks; the worker writes the whole body as one chunk into the socket; then the message is
ended through uvicorn as usual. uvicorn's and h11's view of the connection stays right, so it is kept alive for
the next request like any other.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING

from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from starlette.types import Scope

__all__ = ["HandOffProtocol", "connection_of", "lendable_transport", "reset", "socket_when_flushed"]

_TRANSPORT = "logfire_io.transport"


class HandOffProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, which also shows the application each request's connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Keep the connection where the application finds it."""
        super().connection_made(transport)
        self.app_state = {**self.app_state, _TRANSPORT: transport}  # this connection's copy: scope["state"]


def connection_of(scope: Scope) -> asyncio.Transport | None:
    """The request's connection (None when the app runs under another protocol, as in a test client)."""
    return scope.get("state", {}).get(_TRANSPORT)


def lendable_transport(scope: Scope) -> asyncio.Transport | None:
    """The request's connection, if a worker may write the answer into it: HTTP/1.1 (chunks), not HEAD."""
    transport = connection_of(scope)
    if transport is None or scope["http_version"] != "1.1" or scope["method"] == "HEAD":
        return None
    return transport


async def socket_when_flushed(transport: asyncio.Transport) -> int:
    """The connection's socket, once everything written through the transport has left for the client.

    Raises
    ------
    ConnectionResetError
        The connection is closing (the client went away).
    """
    while transport.get_write_buffer_size() and not transport.is_closing():
        await asyncio.sleep(0.001)  # a pipelining client's earlier answer, still being sent: rare and short
    sock = transport.get_extra_info("socket")
    if transport.is_closing() or sock is None:
        msg = "the client went away before its answer was sent"
        raise ConnectionResetError(msg)
    fd: int = sock.fileno()
    return fd


def reset(transport: asyncio.Transport | None) -> None:
    """Drop the connection at once, with a reset, discarding what the kernel still holds for the client.

    A graceful close would still deliver the megabytes queued in the socket before the client sees the cut.
    A worker holding the socket keeps it open until it is killed; the reset goes out then.
    """
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closing sends RST
    transport.abort()
