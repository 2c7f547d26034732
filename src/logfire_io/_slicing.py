"""Reading past the 10,000-row cap: split the time window, fetch slices in parallel, bisect full ones, in order.

Exactness does not rest on the service's (unverified) boundary semantics: every slice request carries exact
half-open bounds ``low <= time < high`` injected into its SQL, and ``min_timestamp``/``max_timestamp`` are sent
only as a hint one microsecond wider on each side. Slices partition the window, so each row is read once.

Planning: a read first asks for the whole window (for a plain query, its first rows in time order); if that
fits under the cap, it was the only request. If not, the rows before the last time of a plain query's answer are
kept, one histogram query counts the rest per bucket, and buckets are packed into slices of at most 90% of the
cap; a slice that still comes back full is split in two and both halves fetched again.
"""

from __future__ import annotations

import math
import numbers
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import IO

import pyarrow as pa

from logfire_io._exceptions import ConfigurationError, LogfireIOError
from logfire_io._limiter import RequestLimiter
from logfire_io._protocol import MAX_LIMIT, checked_window

__all__ = ["ReadStats", "Slice", "SliceError", "TooDenseError", "checked_slices", "pack_histogram", "plan_slices"]

_ONE_US = timedelta(microseconds=1)
_FILL = 0.9
"""Pack slices to at most this share of the cap, so that growth between planning and fetching rarely fills one."""
HISTOGRAM_BUCKETS = 2_000
MAX_SLICES = 100_000
"""More slices than this is a mistake (a width of a microsecond over days), not a plan."""


class SliceError(LogfireIOError):
    """Raised when a slice still fails after the client's retries; nothing is returned for the whole read."""


class TooDenseError(LogfireIOError):
    """Raised when one microsecond holds more rows than the cap, so the window cannot be split any further."""


@dataclass(frozen=True, order=True)
class Slice:
    """The half-open time window ``[low, high)``: one slice of a read, one request.

    Parameters
    ----------
    low
        The first instant in the slice (timezone-aware).
    high
        The first instant after it.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from logfire_io import Slice
    >>> print(Slice(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
    [2026-01-01T00:00:00+00:00, 2026-01-02T00:00:00+00:00)
    """

    low: datetime
    high: datetime

    def halves(self) -> tuple[Slice, Slice] | None:
        """The two halves, split at the middle microsecond: how a slice that came back full is fetched again.

        Returns
        -------
        tuple of Slice, or None
            ``([low, middle), [middle, high))``, or None if the slice is one microsecond wide.

        Examples
        --------
        >>> from datetime import UTC, datetime
        >>> from logfire_io import Slice
        >>> first, second = Slice(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)).halves()
        >>> print(first.high == second.low, first.high)
        True 2026-01-01 12:00:00+00:00
        """
        width = self.high - self.low
        if width <= _ONE_US:
            return None
        middle = self.low + timedelta(microseconds=width // _ONE_US // 2)
        return Slice(self.low, middle), Slice(middle, self.high)

    def __str__(self) -> str:
        return f"[{self.low.isoformat()}, {self.high.isoformat()})"


def checked_slices(slices: object) -> int | timedelta | None:
    """``slices=`` validated: None, a positive whole number (numpy's too) or a width of a microsecond or more."""
    if slices is None:
        return None
    if isinstance(slices, timedelta):
        if slices < _ONE_US:
            msg = f"`slices` as a width must be at least one microsecond, got {slices!r}"
            raise ConfigurationError(msg)
        return slices
    if isinstance(slices, numbers.Integral) and not isinstance(slices, bool) and slices >= 1:
        return int(slices)
    msg = f"`slices` must be a positive int, a timedelta or None, got {slices!r}"
    raise ConfigurationError(msg)


def plan_slices(low: datetime, high: datetime, slices: int | timedelta) -> list[Slice]:
    """Split ``[low, high)`` into equal slices, as the readers' ``slices=`` does; pure, no I/O.

    Boundaries fall on whole microseconds; the slices cover the window exactly, without overlap.

    Parameters
    ----------
    low, high
        The window; naive datetimes are UTC.
    slices
        A number of slices (at most one per microsecond), or the widest a slice may be (the window is then
        split into as few equal slices as that allows).

    Returns
    -------
    list of Slice
        The slices in time order.

    Raises
    ------
    ConfigurationError
        An empty window, a count or width that is not positive, or more than 100,000 slices.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from logfire_io import plan_slices
    >>> for piece in plan_slices(datetime(2026, 1, 1), datetime(2026, 1, 1, 12), timedelta(hours=5)):
    ...     print(piece)
    [2026-01-01T00:00:00+00:00, 2026-01-01T04:00:00+00:00)
    [2026-01-01T04:00:00+00:00, 2026-01-01T08:00:00+00:00)
    [2026-01-01T08:00:00+00:00, 2026-01-01T12:00:00+00:00)
    """
    checked_low, checked_high = checked_window(low, high)
    if checked_low is None or checked_high is None:
        msg = "`plan_slices` needs both ends of the window, got None"
        raise ConfigurationError(msg)
    low, high = checked_low, checked_high
    if low >= high:
        msg = f"the window is empty: `min_timestamp` {low.isoformat()} is not before `max_timestamp` {high.isoformat()}"
        raise ConfigurationError(msg)
    total_us = (high - low) // _ONE_US
    checked = checked_slices(slices)
    if isinstance(checked, timedelta):
        count = math.ceil(total_us / (checked // _ONE_US))
    else:
        count = min(checked or 1, total_us)
    if count > MAX_SLICES:
        msg = (
            f"`slices` asks for {count:,} slices, more than the {MAX_SLICES:,} allowed; use a wider slice, or "
            "leave `slices` out to plan from the data"
        )
        raise ConfigurationError(msg)
    edges = [low + timedelta(microseconds=total_us * i // count) for i in range(count)] + [high]
    return [Slice(a, b) for a, b in pairwise(edges) if a < b]


def pack_histogram(low: datetime, high: datetime, width_us: int, counts: dict[datetime, int]) -> list[Slice]:
    """Pack histogram buckets (start -> rows) into slices of at most 90% of the cap; pure, no I/O.

    Adjacent light buckets share a slice; a bucket heavier than that is split evenly. Empty stretches join the
    neighbouring slice, so they cost no request of their own.
    """
    target = int(MAX_LIMIT * _FILL)
    slices: list[Slice] = []
    start, rows = low, 0
    bucket = low
    while bucket < high:
        end = min(bucket + timedelta(microseconds=width_us), high)
        n = counts.get(bucket, 0)
        if n > target:
            if rows:
                slices.append(Slice(start, bucket))
            pieces = plan_slices(bucket, end, math.ceil(n / target))
            if not rows and start < bucket:  # an empty stretch before: the first piece takes it
                pieces[0] = Slice(start, pieces[0].high)
            slices.extend(pieces)
            start, rows = end, 0
        elif rows + n > target:
            slices.append(Slice(start, bucket))
            start, rows = bucket, n
        else:
            rows += n
        bucket = end
    if start < high:
        if rows or not slices:
            slices.append(Slice(start, high))
        else:  # an empty stretch at the end: the last slice takes it
            slices[-1] = Slice(slices[-1].low, high)
    return slices


@dataclass
class ReadStats:
    """What a read did: requests sent (and the fewest that could have done it), rows and slices."""

    requests: int = 0
    rows: int = 0
    slices_done: int = 0
    slices_planned: int = 0
    bisections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def minimum_requests(self) -> int:
        """``ceil(rows / cap)``: the requests a perfect oracle would have needed."""
        return max(1, math.ceil(self.rows / MAX_LIMIT))

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1


class Progress:
    """A one-line progress display on a terminal: rows and slices done. No dependency, no bar when piped."""

    def __init__(self, enabled: bool | None, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, stats: ReadStats, limiter: RequestLimiter | None = None, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        total = f"/{stats.slices_planned}" if stats.slices_planned else ""
        line = f"\rlogfire-io: {stats.rows:,} rows, {stats.slices_done}{total} slices, {stats.requests} requests"
        line += limiter.describe() if limiter is not None else ""
        self._stream.write(line + ("\n" if final else ""))
        self._stream.flush()


Fetch = Callable[[Slice], pa.Table]
_POLL = 0.2
"""Seconds between checks for Ctrl-C while waiting for slices."""


def _wait_any(futures: list[Future[pa.Table]]) -> None:
    """Wait until one of ``futures`` is done, in short waits: with polars imported, Ctrl-C does not end a long one.

    (polars' runtime changes how SIGINT is delivered: a lock acquired without a timeout, as ``Future.result()``
    does, is no longer interrupted, and the read went on until every paused slice had woken up.)
    """
    while futures and not wait(futures, timeout=_POLL, return_when=FIRST_COMPLETED).done:
        pass


def fetch_slices(
    plan: list[Slice],
    fetch: Fetch,
    *,
    max_concurrency: int,
    stats: ReadStats,
    progress: Progress,
    abort: Callable[[], None],
    release: Callable[[], None] = lambda: None,
    fail_fast: bool = True,
) -> Generator[tuple[Slice, pa.Table], None, None]:
    """Fetch ``plan`` with at most ``max_concurrency`` requests in flight; yield results in time order.

    Requests are issued lazily, a bounded window ahead of the consumer. A slice that comes back full is
    replaced by its two halves. With ``fail_fast``, a slice that fails stops the read as soon as it fails, even
    while slices before it still run: the read cannot succeed, so it does not wait on them. A read whose
    consumer may stop early (a ``limit``) passes False: the slices before the failed one may be all it needs,
    and failing fast made such a read fail or succeed by which request answered first. The slices share one
    :class:`~logfire_io._limiter.RequestLimiter`: a 429 pauses them all, and they pace themselves under the
    service's rate limit. On any exit before the end (an error,
    Ctrl-C, the consumer stopping), queued slices are cancelled, ``abort`` is called to cut in-flight requests,
    no thread is left behind, and ``release`` is called once every request thread has finished, to close what
    they opened while being cut.
    """
    entries: deque[list] = deque([s, None] for s in plan)
    stats.slices_planned += len(plan)
    limiter = RequestLimiter()

    def limited(piece: Slice) -> pa.Table:
        with limiter.applied():
            return fetch(piece)

    pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="logfire-io-slice")
    finished = False

    def running() -> list[Future[pa.Table]]:
        return [f for _, f in entries if f is not None and not f.done()]

    def settled(entry: list) -> pa.Table:
        """The table of a slice whose request is done; its failure as the read's error."""
        try:
            return entry[1].result()
        except LogfireIOError as exc:
            msg = (
                f"slice {entry[0]} failed after retries, so the read was stopped: {exc}\n"
                f"{stats.rows:,} rows had been fetched; none are returned, as the result would be incomplete."
            )
            raise SliceError(msg) from exc

    def first_failed() -> list | None:
        """A slice that has failed, looked for before each wait: one may fail before the wait starts."""
        return next((e for e in entries if e[1] is not None and e[1].done() and e[1].exception() is not None), None)

    def fill() -> None:
        in_flight = len(running())
        for entry in entries:
            if in_flight >= max_concurrency:
                break
            if entry[1] is None:
                entry[1] = pool.submit(limited, entry[0])
                in_flight += 1

    try:
        while entries:
            fill()
            head = entries[0]
            if head[1] is None:
                _wait_any(running())
                continue
            failed = None  # a later slice's failure stops the read at once, not after the head
            while not head[1].done() and (failed := first_failed() if fail_fast else None) is None:
                _wait_any(running())
            table = settled(failed or head)
            entries.popleft()
            if table.num_rows >= MAX_LIMIT:
                halves = head[0].halves()
                if halves is None:
                    msg = (
                        f"more than {MAX_LIMIT:,} rows share the microsecond {head[0].low.isoformat()}, so the "
                        "window cannot be split further.\n\nHint: narrow the query (e.g. filter on service_name or "
                        "span_name) so that fewer rows share one timestamp."
                    )
                    raise TooDenseError(msg)
                stats.bisections += 1
                stats.slices_planned += 1
                entries.extendleft([[halves[1], None], [halves[0], None]])
                continue
            stats.rows += table.num_rows
            stats.slices_done += 1
            progress.update(stats, limiter)
            yield head[0], table
        finished = True
    finally:
        if not finished:
            limiter.stop()
            for _, future in entries:
                if future is not None:
                    future.cancel()
            abort()
        pool.shutdown(wait=True, cancel_futures=True)
        if not finished:
            release()
        progress.update(stats, limiter, final=True)
