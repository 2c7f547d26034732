"""One request limiter per read: a 429 pauses every slice, and the request rate adapts as TCP's window does.

Without it, each of a read's concurrent slices discovers a rate limit by itself, and keeps hitting it. With it:

- a 429 with ``Retry-After`` pauses every request of the read until then, not only the one that got it;
- the read then paces its requests at a rate (requests per second) that adapts by AIMD: it starts at
  ``decrease`` times the answers accepted in the second before the 429, grows by one request per second every
  second of successes (``rate += 1 / rate`` per answer), and is cut by ``decrease`` again at the next 429
  (once per pause: requests already in flight when it came do not cut it again).

Pacing by rate rather than by requests in flight fits how services limit (requests per second), and keeps the
in-flight count at ``rate x latency`` by itself. The limiter reaches the client through a context variable set
around each slice's fetch, so the client's public methods are unchanged and a caller's own client works too.

Slices wait in worker threads, which Ctrl-C does not reach: when the read stops (an error, Ctrl-C, the consumer
stopping) :meth:`RequestLimiter.stop` ends every wait of its requests at once, and no request starts after it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ReadStopped", "RequestLimiter", "current_limiter", "sleep"]

_CURRENT: ContextVar[RequestLimiter | None] = ContextVar("logfire_io_limiter", default=None)
_WINDOW = 1.0
"""Seconds of accepted answers counted for the first estimate of the service's rate."""


class ReadStopped(Exception):
    """Raised in a request of a read that has stopped; never reaches the caller, who has the read's own error."""


def current_limiter() -> RequestLimiter | None:
    """The limiter of the read this request belongs to, if any."""
    return _CURRENT.get()


def sleep(seconds: float) -> None:
    """Wait ``seconds``, ended early (raising :class:`ReadStopped`) if this request's read stops meanwhile."""
    limiter = current_limiter()
    if limiter is None:
        time.sleep(seconds)
    elif limiter._stopped.wait(min(seconds, threading.TIMEOUT_MAX)):
        raise ReadStopped


class RequestLimiter:
    """Shared by every request of one read, from any thread or task.

    Parameters
    ----------
    decrease
        The factor the rate is cut by at a 429 (TCP Reno halves; 0.7 is CUBIC's, gentler on a steady limit).
    min_rate
        The rate is never cut below this many requests per second.
    """

    def __init__(self, *, decrease: float = 0.7, min_rate: float = 0.5) -> None:
        self.rate: float | None = None
        """Requests per second the read paces itself at; None (no pacing) until the first 429."""
        self.limited = 0
        """429s received."""
        self._decrease, self._min_rate = decrease, min_rate
        self._paused_until = 0.0
        self._next_send = 0.0
        self._last_cut = -1.0
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Make this the limiter of the requests sent inside the block (in this thread or task)."""
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def stop(self) -> None:
        """The read has stopped: end every wait now, and start no more requests."""
        self._stopped.set()

    def wait(self) -> float:
        """Seconds to wait before sending a request: the pause, then the next paced slot, which this reserves.

        Raises
        ------
        ReadStopped
            The read has stopped: the request must not be sent.
        """
        if self._stopped.is_set():
            raise ReadStopped
        with self._lock:
            now = time.monotonic()
            start = max(now, self._paused_until)
            if self.rate is not None:
                start = max(start, self._next_send)
                self._next_send = start + 1 / self.rate
            return start - now

    def accepted(self) -> None:
        """An answer that was not a 429: additive increase, one request per second per second of answers."""
        with self._lock:
            now = time.monotonic()
            self._accepted.append(now)
            while self._accepted[0] < now - _WINDOW:
                self._accepted.popleft()
            if self.rate is not None:
                self.rate += 1 / self.rate

    def rate_limited(self, retry_after: float, sent: float) -> None:
        """A 429 for a request sent at ``sent`` (``time.monotonic()``): pause everyone; cut the rate once."""
        with self._lock:
            now = time.monotonic()
            self.limited += 1
            self._paused_until = max(self._paused_until, now + retry_after)
            if sent < self._last_cut:
                return  # sent before the last cut took effect: the same overload, already answered
            recent = sum(1 for at in self._accepted if at >= now - _WINDOW)
            base = self.rate if self.rate is not None else max(recent / _WINDOW, 1.0)
            self.rate = max(self._min_rate, base * self._decrease)
            self._last_cut = self._paused_until
            self._next_send = self._paused_until

    def describe(self) -> str:
        """For progress output: the pace and the 429s, or nothing before the first 429."""
        if self.rate is None:
            return ""
        return f", paced at {self.rate:.1f} req/s after {self.limited} x 429"
