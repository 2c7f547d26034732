"""A per-token request rate limit, answered as Logfire answers it: 429 with a whole-second ``Retry-After``.

A client that adapts to a rate limit can only be tested against one: this is a token bucket per read token,
refilled at ``rate`` requests per second and holding at most one second of requests, so a burst of ``rate``
requests passes and anything faster than ``rate`` per second is refused. Every query request is logged with
its ``time.monotonic()`` arrival, limited or not, so tests can check when requests arrived relative to a 429.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["RateDecision", "RateLimiter"]


@dataclass(frozen=True)
class RateDecision:
    """One query request as the limit saw it (never the token)."""

    at: float
    """``time.monotonic()`` when the request arrived."""
    retry_after: int
    """0 when it was allowed, else the ``Retry-After`` seconds of its 429."""


class RateLimiter:
    """Token buckets of ``rate`` requests per second per token; ``None`` or 0 allows everything."""

    def __init__(self, rate: float | None = None) -> None:
        if rate is not None and not rate >= 0:
            msg = f"`rate_limit` must be a number of requests per second >= 0, got {rate!r}"
            raise ValueError(msg)
        self.rate = rate or None
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens left, when counted)
        self._lock = threading.Lock()
        self.log: deque[RateDecision] = deque(maxlen=10_000)
        """The latest decisions, oldest first."""

    def take(self, token: str) -> int:
        """Seconds the request must wait (its ``Retry-After``), or 0 when it may run now."""
        with self._lock:
            now = time.monotonic()
            if self.rate is None:
                self.log.append(RateDecision(now, 0))
                return 0
            capacity = max(1.0, self.rate)
            left, then = self._buckets.get(token, (capacity, now))
            left = min(capacity, left + (now - then) * self.rate)
            retry_after = 0 if left >= 1 else max(1, math.ceil((1 - left) / self.rate))
            self._buckets[token] = (left - 1 if retry_after == 0 else left, now)
            self.log.append(RateDecision(now, retry_after))
        return retry_after
