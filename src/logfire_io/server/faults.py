"""Faults the local server can inject into query responses, on demand or at random.

Clients are only as good as their behaviour when the service misbehaves, and most faults cannot be produced by
a healthy server. Kinds:

- ``"429"`` (with ``Retry-After``), ``"500"``, ``"502"``, ``"503"``, ``"401"``: the status instead of an answer;
- ``"reset"``: the connection is dropped halfway through the body;
- ``"truncate"``: the body ends cleanly but early (an Arrow stream loses its end-of-stream marker);
- ``"slow"``: the body trickles out in small, delayed pieces;
- ``"drip"``: the status line and headers trickle out a byte every 50 ms (about 6 s), then the connection closes.

A drip cannot be sent through ASGI, which hands the headers to the server in one piece: the local server runs
:class:`~logfire_io.server.handoff.HandOffProtocol`, which shows the app the connection's transport, and
:func:`drip_head` writes to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncio import Transport

__all__ = [
    "FAULT_KINDS",
    "FaultPlan",
    "InjectedReset",
    "ResponseCut",
    "drip_head",
    "parse_faults",
    "quiet_injected_resets",
]

FAULT_KINDS = frozenset({"429", "500", "502", "503", "401", "reset", "truncate", "slow", "drip"})
STATUS_FAULTS = frozenset({"429", "500", "502", "503", "401"})
_NONE = "none"  # a queued place-holder: answer this request normally


class ResponseCut(ConnectionResetError):
    """Raised inside a response body to drop the connection on purpose, once the status has been sent."""


class InjectedReset(ResponseCut):
    """Raised inside a response body to drop the connection on purpose (the ``reset`` fault)."""


_DRIP_INTERVAL = 0.05


async def drip_head(transport: Transport | None, media_type: str) -> None:
    """Send a 200's status line and headers a byte at a time, then close the connection (the ``drip`` fault)."""
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {media_type}\r\nx-drip: {'.' * 60}\r\n\r\n".encode()
    for byte in head:
        if transport is None or transport.is_closing():  # not under HandOffProtocol, or the client gave up
            break
        transport.write(bytes([byte]))
        await asyncio.sleep(_DRIP_INTERVAL)
    if transport is not None:
        transport.close()
    msg = "injected fault: headers dripped, then the connection closed"
    raise InjectedReset(msg)


class _DropInjectedResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseCut))


def quiet_injected_resets() -> None:
    """Keep the server's error log for real errors: a deliberate cut (already logged in one line) is not one."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropInjectedResets) for f in logger.filters):
        logger.addFilter(_DropInjectedResets())


def parse_faults(spec: str | dict[str, float] | None) -> dict[str, float]:
    """Parse ``"429:0.1,reset:0.05"`` (or a dict) into kind -> probability, validating both."""
    if not spec:
        return {}
    items = spec.items() if isinstance(spec, dict) else (part.split(":", 1) for part in spec.split(",") if part)
    out: dict[str, float] = {}
    for item in items:
        try:
            kind, raw = item
            probability = float(raw)
        except ValueError:
            msg = f"a fault must look like `kind:probability`, got {':'.join(map(str, item))!r}"
            raise ValueError(msg) from None
        kind = str(kind).strip()
        if kind not in FAULT_KINDS:
            msg = f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}"
            raise ValueError(msg)
        if not 0 <= probability <= 1:
            msg = f"the probability of fault {kind!r} must be in [0, 1], got {probability}"
            raise ValueError(msg)
        out[kind] = probability
    if sum(out.values()) > 1:
        msg = f"fault probabilities add up to more than 1: {out}"
        raise ValueError(msg)
    return out


class FaultPlan:
    """Which fault, if any, the next query request gets: queued faults first, then random ones."""

    def __init__(self, probabilities: dict[str, float] | None = None, *, seed: int | None = None) -> None:
        self._probabilities = probabilities or {}
        self._random = random.Random(seed)
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self.injected: list[str] = []
        """Every fault injected so far, in order (for tests and reports)."""

    def configure(self, probabilities: str | dict[str, float] | None, *, seed: int | None = None) -> None:
        """Replace the random faults (same syntax as ``LocalLogfire(faults=...)``) and drop queued ones."""
        parsed = parse_faults(probabilities)
        with self._lock:
            self._probabilities = parsed
            self._random = random.Random(seed)
            self._queue.clear()

    def push(self, kind: str, times: int = 1, *, after: int = 0) -> None:
        """Inject ``kind`` into ``times`` query requests, once ``after`` more requests have been answered normally."""
        if kind not in FAULT_KINDS:
            msg = f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}"
            raise ValueError(msg)
        with self._lock:
            self._queue.extend([_NONE] * after + [kind] * times)

    def draw(self) -> str | None:
        """The fault for the request being served now, or None."""
        with self._lock:
            if self._queue:
                queued = self._queue.popleft()
                kind: str | None = None if queued is _NONE else queued
            else:
                kind, roll = None, self._random.random()
                for candidate, probability in self._probabilities.items():
                    if roll < probability:
                        kind = candidate
                        break
                    roll -= probability
            if kind is not None:
                self.injected.append(kind)
            return kind
