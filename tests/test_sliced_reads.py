"""Sliced reads past the row cap: every row of the window exactly once, whatever the server's boundary semantics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logfire_io
from logfire_io import ConfigurationError, LogfireQueryClient, RowCapError, SliceError, TooDenseError
from logfire_io._read import ReadRequest, iter_tables
from logfire_io._slicing import ReadStats
from logfire_io.server import LocalLogfire
from tests.helpers import make_records
from tests.strategies import windows

BASE = datetime(2026, 2, 1, tzinfo=UTC)
END = BASE + timedelta(minutes=10)
BURST = BASE + timedelta(minutes=5)
DENSE = BASE + timedelta(minutes=7)
US = timedelta(microseconds=1)


def _boundary_records() -> pa.Table:
    """~47,000 rows: uniform, on whole seconds, a 3,000-row single-microsecond burst, 12,000 rows in one second
    (a slice there comes back full and must be halved), and an empty minute."""
    rng = np.random.default_rng(11)
    span_us = int((END - BASE) / US)
    uniform = rng.integers(0, span_us, 30_000)
    uniform = uniform[(uniform < 8 * 60_000_000) | (uniform >= 9 * 60_000_000)]  # minute 8 is empty
    seconds = rng.integers(0, 600, 2_000) * 1_000_000
    burst = np.full(3_000, int((BURST - BASE) / US))
    dense = int((DENSE - BASE) / US) + rng.integers(0, 1_000_000, 12_000)
    offsets = np.sort(np.concatenate([uniform, seconds, burst, dense]))
    starts = [BASE + timedelta(microseconds=int(o)) for o in offsets]
    return make_records(starts, level=rng.choice([5, 9, 13, 17], len(starts)).tolist())


RECORDS = _boundary_records()
ANCHORS = [BASE, END, BURST, BURST + US, DENSE, DENSE + timedelta(seconds=1), BASE + timedelta(minutes=8)]
ANCHORS += [BASE + timedelta(seconds=s) for s in (1, 59, 60, 61, 300, 599)]


def _expected(low: datetime, high: datetime, sql_filter: str | None = None) -> Counter[str]:
    times = RECORDS.column("start_timestamp")
    keep = pc.and_(pc.greater_equal(times, pa.scalar(low)), pc.less(times, pa.scalar(high)))
    if sql_filter == "level >= 13":
        keep = pc.and_(keep, pc.greater_equal(RECORDS.column("level"), 13))
    return Counter(RECORDS.filter(keep).column("span_id").to_pylist())


@pytest.fixture(scope="module", params=["[)", "[]", "(]", "()"])
def edge_server(request: pytest.FixtureRequest) -> Iterator[LocalLogfire]:
    with LocalLogfire(records=RECORDS, bounds=request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def dense_server() -> Iterator[LocalLogfire]:
    with LocalLogfire(records=RECORDS, bounds="[)", workers=2) as srv:
        yield srv


def _read(srv: LocalLogfire, sql: str, low: datetime | None, high: datetime | None, **kwargs: object) -> pa.Table:
    return logfire_io.read_logfire_arrow(
        sql,
        read_token=srv.read_token,
        base_url=srv.base_url,
        min_timestamp=low,
        max_timestamp=high,
        progress=False,
        **kwargs,  # type: ignore[arg-type]
    )


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    window=windows(BASE, END, ANCHORS),
    slices=st.one_of(st.none(), st.integers(1, 25), st.sampled_from([timedelta(seconds=1), timedelta(seconds=37)])),
    sql_filter=st.sampled_from([None, "level >= 13"]),
)
def test_sliced_read_equals_the_rows_of_the_window(
    edge_server: LocalLogfire, window: tuple[datetime, datetime], slices: int | timedelta | None, sql_filter: str | None
) -> None:
    low, high = window
    sql = "SELECT span_id, start_timestamp FROM records_all" + (f" WHERE {sql_filter}" if sql_filter else "")
    table = _read(edge_server, sql, low, high, slices=slices, max_concurrency=4)
    assert Counter(table.column("span_id").to_pylist()) == _expected(low, high, sql_filter)


def test_a_50k_row_window_is_read_completely(dense_server: LocalLogfire) -> None:
    stats = ReadStats()
    request = ReadRequest("SELECT * FROM records_all", BASE, END, max_concurrency=8, progress=False, stats=stats)
    with LogfireQueryClient(dense_server.read_token, base_url=dense_server.base_url) as client:
        tables = list(iter_tables(client, request, owns_client=False))
    assert sum(t.num_rows for t in tables) == RECORDS.num_rows
    assert Counter(pa.concat_tables(tables).column("span_id").to_pylist()) == _expected(BASE, END)
    # one whole-window try, one histogram, then slices; the dense second is split by plan, not by bisection
    assert stats.requests <= stats.minimum_requests + 4, stats
    assert all(t.num_rows < logfire_io.MAX_LIMIT for t in tables)


def test_full_slice_is_bisected(dense_server: LocalLogfire) -> None:
    stats = ReadStats()
    low, high = DENSE - timedelta(seconds=2), DENSE + timedelta(seconds=2)
    request = ReadRequest("SELECT span_id FROM records_all", low, high, slices=1, progress=False, stats=stats)
    with LogfireQueryClient(dense_server.read_token, base_url=dense_server.base_url) as client:
        rows = pa.concat_tables(iter_tables(client, request, owns_client=False))
    assert stats.bisections >= 1
    assert Counter(rows.column("span_id").to_pylist()) == _expected(low, high)


def test_too_dense_to_split() -> None:
    moment = BASE + timedelta(seconds=30)
    table = make_records([moment] * logfire_io.MAX_LIMIT + [moment + timedelta(seconds=1)])
    with LocalLogfire(records=table, workers=1) as srv, pytest.raises(TooDenseError, match="share the microsecond"):
        _read(srv, "SELECT span_id FROM records_all", BASE, END)


def test_failing_slice_fails_the_read_and_names_the_window(dense_server: LocalLogfire) -> None:
    dense_server.faults.push("500", times=1, after=2)
    with pytest.raises(SliceError, match=r"slice \[2026-02-01T.*\) failed after retries") as caught:
        _read(dense_server, "SELECT span_id FROM records_all", BASE, END, slices=6, max_concurrency=1)
    assert "rows had been fetched; none are returned" in str(caught.value)
    assert isinstance(caught.value.__cause__, logfire_io.UnexpectedResponseError)


def test_order_by_holds_across_slices(dense_server: LocalLogfire) -> None:
    sql = "SELECT span_id, level, start_timestamp FROM records_all ORDER BY level DESC, start_timestamp, span_id"
    table = _read(dense_server, sql, BASE, END, slices=9)
    expected = RECORDS.select(["span_id", "level", "start_timestamp"]).sort_by(
        [("level", "descending"), ("start_timestamp", "ascending"), ("span_id", "ascending")]
    )
    assert table.column("span_id").to_pylist() == expected.column("span_id").to_pylist()


def test_limit_above_the_cap_reads_that_many(dense_server: LocalLogfire) -> None:
    assert _read(dense_server, "SELECT span_id FROM records_all", BASE, END, limit=15_000).num_rows == 15_000


def test_open_window_is_closed_at_the_data(dense_server: LocalLogfire) -> None:
    table = _read(dense_server, "SELECT span_id FROM records_all", None, None)
    assert Counter(table.column("span_id").to_pylist()) == _expected(BASE, END)


def test_non_sliceable_query_over_the_cap_raises(dense_server: LocalLogfire) -> None:
    sql = "SELECT span_id, count(*) AS n FROM records_all GROUP BY span_id"
    with pytest.raises(RowCapError, match="hit the 10,000-row cap") as caught:
        _read(dense_server, sql, BASE, END)
    assert "aggregate" in str(caught.value)
    assert _read(dense_server, sql, BASE, END, limit=50).num_rows == 50  # the user's own limit is honoured
    with pytest.raises(ConfigurationError, match="cannot be split by time"):
        _read(dense_server, sql, BASE, END, slices=4)


def _slice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("logfire-io-slice")]


def test_stopping_early_cancels_and_leaves_no_threads(dense_server: LocalLogfire) -> None:
    request = ReadRequest("SELECT * FROM records_all", BASE, END, slices=40, max_concurrency=4, progress=False)
    with LogfireQueryClient(dense_server.read_token, base_url=dense_server.base_url) as client:
        pieces = iter_tables(client, request, owns_client=True)
        next(pieces)
        pieces.close()
    assert _slice_threads() == []
    assert request.stats.requests < 40  # the rest were never sent


def test_keyboard_interrupt_stops_promptly(dense_server: LocalLogfire) -> None:
    request = ReadRequest("SELECT * FROM records_all", BASE, END, slices=40, max_concurrency=4, progress=False)
    started = time.monotonic()
    with LogfireQueryClient(dense_server.read_token, base_url=dense_server.base_url) as client:
        with pytest.raises(KeyboardInterrupt):
            for _ in iter_tables(client, request, owns_client=True):
                raise KeyboardInterrupt
    assert time.monotonic() - started < 5
    assert _slice_threads() == []


def test_progress_output_on_request(dense_server: LocalLogfire, capsys: pytest.CaptureFixture[str]) -> None:
    logfire_io.read_logfire_arrow(
        "SELECT span_id FROM records_all",
        read_token=dense_server.read_token,
        base_url=dense_server.base_url,
        min_timestamp=BASE,
        max_timestamp=END,
        slices=5,
        progress=True,
    )
    err = capsys.readouterr().err
    import re

    final = err.rstrip("\n").split("\r")[-1]
    assert re.fullmatch(r"logfire-io: 43,950 rows, (\d+)/\1 slices, \d+ requests", final), err
    assert dense_server.read_token not in err
