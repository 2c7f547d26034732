"""Pure slice planning: slices partition the window exactly, and packed slices respect the cap."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io import MAX_LIMIT, ConfigurationError, LogfireIOError, Slice, plan_slices
from logfire_io import _slicing as slicing
from logfire_io._slicing import Progress, ReadStats, SliceError, fetch_slices, pack_histogram
from tests.strategies import instants

LOW = datetime(2026, 1, 1, tzinfo=UTC)
HIGH = LOW + timedelta(days=3)


def _assert_partition(slices: list[Slice], low: datetime, high: datetime) -> None:
    assert slices[0].low == low
    assert slices[-1].high == high
    for left, right in itertools.pairwise(slices):
        assert left.high == right.low  # no gap, no overlap: half-open [low, high)
    assert all(s.low < s.high for s in slices)


@given(
    instants(LOW, HIGH),
    instants(LOW, HIGH),
    st.one_of(st.integers(1, 500), st.integers(1, 10**9).map(lambda us: timedelta(microseconds=us))),
)
def test_plan_slices_partitions_the_window(a: datetime, b: datetime, slices: int | timedelta) -> None:
    if a == b:
        with pytest.raises(ConfigurationError, match="window is empty"):
            plan_slices(a, b, slices)
        return
    low, high = min(a, b), max(a, b)
    count = slices if isinstance(slices, int) else -(-(high - low) // slices)
    if count > 100_000 and not (isinstance(slices, int) and (high - low).total_seconds() * 1e6 <= 100_000):
        with pytest.raises(ConfigurationError, match="more than the 100,000 allowed"):
            plan_slices(low, high, slices)
        return
    plan = plan_slices(low, high, slices)
    _assert_partition(plan, low, high)
    if isinstance(slices, int):
        assert len(plan) == min(slices, (high - low) // timedelta(microseconds=1))


@settings(max_examples=200)
@given(st.integers(1, 3_600_000_000), st.lists(st.integers(0, 40_000), min_size=1, max_size=60))
def test_pack_histogram_partitions_and_respects_the_cap(width_us: int, counts: list[int]) -> None:
    width = timedelta(microseconds=width_us)
    high = LOW + width * len(counts)
    histogram = {LOW + width * i: n for i, n in enumerate(counts)}
    plan = pack_histogram(LOW, high, width_us, histogram)
    _assert_partition(plan, LOW, high)
    for piece in plan:  # a slice that packs several non-empty buckets holds at most 90% of the cap
        buckets = [n for start, n in histogram.items() if piece.low <= start and start + width <= piece.high and n]
        if len(buckets) > 1:
            assert sum(buckets) <= MAX_LIMIT * 0.9
    assert len(plan) <= max(1, sum(-(-n // int(MAX_LIMIT * 0.9)) for n in counts)) + len(counts)


def test_halves_stop_at_one_microsecond() -> None:
    one = Slice(LOW, LOW + timedelta(microseconds=1))
    assert one.halves() is None
    left, right = Slice(LOW, LOW + timedelta(microseconds=3)).halves()  # type: ignore[misc]
    assert left.high == right.low
    assert left.low == LOW
    assert right.high == LOW + timedelta(microseconds=3)


@pytest.mark.parametrize("slices", [0, -1, 1.5, "4", True, timedelta(0)])
def test_bad_slices(slices: object) -> None:
    with pytest.raises(ConfigurationError, match="`slices`"):
        plan_slices(LOW, HIGH, slices)  # type: ignore[arg-type]


@pytest.mark.parametrize("main_thread_late", [False, True])
def test_a_later_slice_failing_stops_the_read_while_the_first_still_runs(
    main_thread_late: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read cannot succeed once any slice has failed, so it does not wait for the slices before it.

    ``main_thread_late``: the slice fails before the reading thread starts to wait (as on a busy machine). Its
    failure was looked for only after a wait, which then waited on the head alone, as long as the head ran.
    """
    if main_thread_late:
        late_wait = slicing._wait_any
        monkeypatch.setattr(slicing, "_wait_any", lambda futures: (time.sleep(0.3), late_wait(futures)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    plan = [Slice(start + timedelta(hours=i), start + timedelta(hours=i + 1)) for i in range(3)]
    head_may_end, head_ended = threading.Event(), threading.Event()
    head_running_at_abort: list[bool] = []

    def fetch(piece: Slice) -> pa.Table:
        if piece == plan[0]:
            head_may_end.wait(10)
            head_ended.set()
        if piece == plan[2]:
            raise LogfireIOError("the query failed (HTTP 400): Divide by zero error")
        return pa.table({"x": [1]})

    def abort() -> None:
        head_running_at_abort.append(not head_ended.is_set())
        head_may_end.set()

    pieces = fetch_slices(
        plan, fetch, max_concurrency=3, stats=ReadStats(), progress=Progress(enabled=False), abort=abort
    )
    with pytest.raises(SliceError, match=r"slice \[2026-01-01T02:00:00\+00:00.*Divide by zero"):
        next(pieces)
    assert head_running_at_abort == [True]


def test_a_read_with_a_limit_gets_the_slices_before_a_failed_one() -> None:
    """Its first slices may meet the limit, so a later failure must not stop it before they are in.

    Failing fast regardless made ``limit=5, slices=16`` with a later slice failing (a division by zero) fail in 2
    reads of 10 against the local server, by which request answered first; every read succeeded before.
    """
    plan = [Slice(LOW + timedelta(hours=i), LOW + timedelta(hours=i + 1)) for i in range(3)]
    later_failed = threading.Event()

    def fetch(piece: Slice) -> pa.Table:
        if piece == plan[0]:
            later_failed.wait(10)
            time.sleep(0.2)  # the failed slice's future is done by now
        if piece == plan[2]:
            later_failed.set()
            raise LogfireIOError("the query failed (HTTP 400): Divide by zero error")
        return pa.table({"x": [1]})

    pieces = fetch_slices(
        plan,
        fetch,
        max_concurrency=3,
        stats=ReadStats(),
        progress=Progress(enabled=False),
        abort=lambda: None,
        fail_fast=False,
    )
    first, table = next(pieces)
    pieces.close()
    assert (first, table.num_rows) == (plan[0], 1)
