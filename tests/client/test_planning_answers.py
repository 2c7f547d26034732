"""Issue 13: the answers to the planning queries (window bounds, histogram, probe) are checked like any body.

A read plans its slices from them; a malformed one must stop the read with an ``UnexpectedResponseError`` naming
the request, never an ``IndexError``/``TypeError``/``OverflowError`` or a misleading ``ConfigurationError``.
Each answer is scripted on a real loopback server (tests/client/conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logfire_io
from logfire_io import LogfireIOError, UnexpectedResponseError
from tests.client.conftest import Answer, Hostile
from tests.client.test_hostile_responses import TOKEN, _stream

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
UTC_US = pa.timestamp("us", "UTC")
REFUSED = r"POST http://127\.0\.0\.1:\d+/v2/query was refused: the answer to the "


def _first(times: pa.Array, names: tuple[str, str] = ("s", "__logfire_t")) -> Answer:
    """An answer to the read's first request: its rows, then their time (the read keeps those before the last)."""
    return Answer(_stream(pa.table({names[0]: pa.array(["x"] * len(times)), names[1]: times})))


FULL = _first(pa.array([T0] * 10_000, UTC_US))  # the window's first rows came back at the cap, all at T0


def _stats(lo: object = T0, hi: object = T1, n: object = 5, types: tuple = (UTC_US, UTC_US, pa.int64())) -> Answer:
    return Answer(_stream(pa.table({"lo": pa.array([lo], types[0]), "hi": pa.array([hi], types[1]), "n": [n]})))


def _read(hostile: Hostile, *answers: Answer, **kwargs: object) -> pa.Table:
    hostile.serve(*answers)
    window = {"min_timestamp": T0} | kwargs
    return logfire_io.read_logfire_arrow(
        "SELECT s FROM records", read_token=TOKEN, base_url=hostile.base_url, progress=False, **window
    )


STATS = {
    "wrong columns": Answer(_stream(pa.table({"x": [1]}))),
    "two columns": Answer(_stream(pa.table({"lo": pa.array([T0], UTC_US), "n": [1]}))),
    "times as text": _stats("a", "b", types=(pa.string(), pa.string(), pa.int64())),
    "count as text": Answer(
        _stream(pa.table({"lo": pa.array([T0], UTC_US), "hi": pa.array([T1], UTC_US), "n": ["5"]}))
    ),
    "null count": _stats(n=None),
    "negative count": _stats(n=-3),
    "null time": _stats(lo=None),
    "latest time at the end of time": _stats(hi=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    "time before the window": _stats(lo=T0 - timedelta(days=1)),
    "earliest after latest": _stats(lo=T1 - timedelta(minutes=1), hi=T0 + timedelta(minutes=1)),
}


@pytest.mark.parametrize("answer", list(STATS))
def test_13_malformed_window_bounds_are_refused(hostile: Hostile, answer: str) -> None:
    with pytest.raises(UnexpectedResponseError, match=REFUSED + "query for the bounds of the window"):
        _read(hostile, STATS[answer], slices=4)
    assert len(hostile.requests) == 1  # a malformed answer is not asked again: it would come back the same


def _histogram(starts: pa.Array, counts: list[object]) -> Answer:
    return Answer(_stream(pa.table({"b": starts, "n": counts})))


HISTOGRAMS = {
    "wrong columns": Answer(_stream(pa.table({"b": pa.array([T0], UTC_US)}))),
    "bucket as text": _histogram(pa.array(["2026-01-01"]), [3]),
    "null bucket": _histogram(pa.array([None], UTC_US), [3]),
    "null count": _histogram(pa.array([T0], UTC_US), [None]),
    "negative count": _histogram(pa.array([T0], UTC_US), [-1]),
    "bucket past the window": _histogram(pa.array([T1 + timedelta(days=400)], UTC_US), [3]),
    "bucket at the end of time": _histogram(pa.array([2**62], pa.timestamp("s", "UTC")), [3]),
    "one bucket twice": _histogram(pa.array([T0, T0], UTC_US), [3, 4]),
}


@pytest.mark.parametrize("answer", list(HISTOGRAMS))
def test_13_malformed_histogram_is_refused(hostile: Hostile, answer: str) -> None:
    with pytest.raises(UnexpectedResponseError, match=REFUSED + "histogram query"):
        _read(hostile, FULL, HISTOGRAMS[answer], max_timestamp=T1)


FIRST_ANSWERS = {
    "no time column": _first(pa.array([T0] * 10_000, UTC_US), ("s", "t")),
    "time as text": _first(pa.array(["2026-01-01"] * 10_000)),
    "null time": _first(pa.array([None] * 10_000, UTC_US)),
    "time before the window": _first(pa.array([T0 - timedelta(days=1)] * 10_000, UTC_US)),
    "out of time order": _first(pa.array([T0 + timedelta(seconds=9_999 - i) for i in range(10_000)], UTC_US)),
}


@pytest.mark.parametrize("answer", list(FIRST_ANSWERS))
def test_16_malformed_first_answer_is_refused(hostile: Hostile, answer: str) -> None:
    """The rows the read keeps from its first answer are trusted only once their times are checked."""
    with pytest.raises(UnexpectedResponseError, match=REFUSED + "first request"):
        _read(hostile, FIRST_ANSWERS[answer], max_timestamp=T1)
    assert len(hostile.requests) == 1


def test_13_a_first_answer_in_nanoseconds_is_cut_at_whole_microseconds(hostile: Hostile) -> None:
    """Times finer than the microseconds reads are bounded by: the rows of the last microsecond are read again.

    They used to reach pyarrow's safe cast to microseconds, which raised a raw ``ArrowInvalid``.
    """
    start_ns = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000 + 500
    ns = pa.array(range(start_ns, start_ns + 10_000), pa.int64()).cast(pa.timestamp("ns", "UTC"))  # 10.5 us
    resume_at = T0 + timedelta(microseconds=10)  # the last row's microsecond, where the rest is read from
    table = _read(
        hostile,
        _first(ns),
        _histogram(pa.array([resume_at], UTC_US), [1]),
        Answer(_stream(pa.table({"s": ["rest"]}))),
        max_timestamp=T1,
    )
    assert table.num_rows == 9_500 + 1  # the rows before T0 + 10 us, then the rest's answer
    assert table.column("s").to_pylist()[-2:] == ["x", "rest"]


def test_13_probe_with_rows_is_refused(hostile: Hostile) -> None:
    hostile.serve(Answer(_stream(pa.table({"s": ["x"]}))))  # the probe (LIMIT 0) answered with a row
    with pytest.raises(UnexpectedResponseError, match=REFUSED + "query for the result's columns has 1 rows"):
        logfire_io.read_logfire_arrow(
            "SELECT s FROM records ORDER BY s",
            read_token=TOKEN,
            base_url=hostile.base_url,
            min_timestamp=T0,
            max_timestamp=T1,
            slices=2,
            progress=False,
            limit=1,
        )


def test_13_well_formed_planning_answers_are_used(hostile: Hostile) -> None:
    """The control: an empty window's bounds end the read with no row; a histogram is planned from."""
    assert (
        _read(
            hostile, _stats(None, None, 0), Answer(_stream(pa.table({"s": pa.array([], pa.string())}))), slices=4
        ).num_rows
        == 0
    )
    table = _read(
        hostile,
        FULL,
        _histogram(pa.array([T0], UTC_US), [3]),
        Answer(_stream(pa.table({"s": ["a", "b", "c"]}))),
        max_timestamp=T1,
    )
    assert table.column("s").to_pylist() == ["a", "b", "c"]


TYPES = st.sampled_from([UTC_US, pa.timestamp("ns"), pa.timestamp("s", "UTC"), pa.int64(), pa.string(), pa.float64()])


@st.composite
def stats_answers(draw: st.DrawFn) -> bytes:
    """Any one-row table of up to four columns, named like the answer's or not, of any type."""
    names = draw(st.lists(st.sampled_from(["lo", "hi", "n", "x"]), min_size=1, max_size=4))
    columns = {}
    for name in names:
        data_type = draw(TYPES)
        value = draw(st.none() | st.integers(-(2**62), 2**62))
        columns[name] = (
            pa.array([value], pa.int64()).cast(data_type, safe=False) if value is not None else pa.nulls(1, data_type)
        )
    return _stream(pa.table(columns))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=stats_answers())
def test_13_any_window_bounds_answer_is_read_or_refused(hostile: Hostile, body: bytes) -> None:
    hostile.requests.clear()
    try:
        _read(hostile, Answer(body), Answer(_stream(pa.table({"s": pa.array([], pa.string())}))), slices=1)
    except LogfireIOError as exc:
        assert isinstance(exc, UnexpectedResponseError), exc


DRY_RUN_ANSWERS = {
    "wrong columns": Answer(_stream(pa.table({"x": [1]}))),
    "null count": Answer(_stream(pa.table({"n": pa.array([None], pa.int64()), "lo": [T0], "hi": [T0], "kept": [0]}))),
    "time past the window": Answer(
        _stream(pa.table({"n": [10_000], "lo": [T0], "hi": [T1 + timedelta(days=9)], "kept": [5]}))
    ),
}


@pytest.mark.parametrize("answer", list(DRY_RUN_ANSWERS))
def test_13_a_dry_run_refuses_malformed_counts(hostile: Hostile, answer: str) -> None:
    """plan() trusted its aggregates: a malformed one raised IndexError/KeyError or planned from garbage."""
    hostile.serve(DRY_RUN_ANSWERS[answer])
    with pytest.raises(UnexpectedResponseError, match=REFUSED):
        logfire_io.plan(
            "SELECT s FROM records", read_token=TOKEN, base_url=hostile.base_url, min_timestamp=T0, max_timestamp=T1
        )
