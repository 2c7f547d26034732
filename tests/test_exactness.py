"""The differential oracle: every read, split or not, equals the same SQL run once, unsplit and uncapped.

Hypothesis draws queries from a grammar of what users write (projections and expressions, filters with OR,
``->>``, self-joins of records on ``parent_span_id`` of each kind, subqueries in FROM, ORDER BY with DESC and
NULLS FIRST/LAST, limits below and above the cap), windows (open and closed, in UTC and in a zone across a DST
change, edges on bursts) and how to split them (``slices=`` counts and widths, or the histogram plan). The
table is adversarial: bursts of thousands of rows on one microsecond (one at the DST change itself), rows on
whole seconds and minutes where slice edges fall, NULLs in every sortable column, pending spans, parents
inside and outside any window. It is drawn from ``LOGFIRE_IO_ORACLE_SEED`` (default 0) so that a long run can
try other tables; ``LOGFIRE_IO_ORACLE_EXAMPLES`` sets the number of queries (default: a modest CI run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import logfire_io
import polars as pl
from logfire_io import ConfigurationError, RowCapError
from logfire_io._cli import main
from logfire_io.server import LocalLogfire
from tests.helpers import SentQueries, make_records
from tests.oracle import assert_same_result, check, in_window, read, run_unsplit

SEED = int(os.environ.get("LOGFIRE_IO_ORACLE_SEED", "0"))
EXAMPLES = int(os.environ.get("LOGFIRE_IO_ORACLE_EXAMPLES", "30"))
PARIS = ZoneInfo("Europe/Paris")
DST = datetime(2026, 3, 29, 1, tzinfo=UTC)  # Paris springs forward from 02:00 to 03:00 local
START, END = DST - timedelta(hours=2), DST + timedelta(hours=2)
US = timedelta(microseconds=1)
BURSTS = {DST: 2_500, DST + timedelta(hours=1, microseconds=1): 1_500}


def _adversarial_records(seed: int) -> pa.Table:
    """About 20,000 records between START and END, so that a read of the whole window must be split."""
    rng = np.random.default_rng(seed)
    span_us = (END - START) // US
    offsets = np.concatenate(
        [
            rng.integers(0, span_us, 14_000),
            rng.integers(0, span_us // 1_000_000, 2_000) * 1_000_000,  # whole seconds
            np.arange(0, span_us, 60_000_000),  # every minute
            *(np.full(n, (at - START) // US) for at, n in BURSTS.items()),
        ]
    )
    offsets.sort()
    n = len(offsets)
    starts = [START + timedelta(microseconds=int(o)) for o in offsets]
    span_ids = [f"{i:016x}" for i in range(n)]
    parents = rng.integers(0, n, n)
    parent_kind = rng.random(n)
    duration = np.round(rng.exponential(0.5, n), 3)
    status = rng.choice([200, 404, 500], n)
    keys = rng.choice(["v1", "v2", "v3"], n)
    return make_records(
        starts,
        span_id=span_ids,
        parent_span_id=[
            span_ids[p] if k < 0.6 else (None if k < 0.9 else "dangling")
            for p, k in zip(parents, parent_kind, strict=True)
        ],
        kind=rng.choice(["span", "span", "log", "pending_span"], n).tolist(),
        level=rng.choice([9, 13, 17], n).tolist(),
        span_name=rng.choice(["alpha", "beta", "Gamma", "delta x"], n).tolist(),
        duration=[None if m else float(d) for d, m in zip(duration, rng.random(n) < 0.2, strict=True)],
        http_response_status_code=[None if m else int(s) for s, m in zip(status, rng.random(n) < 0.3, strict=True)],
        attributes=[
            None if m else f'{{"k": "{k}", "n": {i}}}'
            for i, (k, m) in enumerate(zip(keys, rng.random(n) < 0.1, strict=True))
        ],
    )


RECORDS = _adversarial_records(SEED)
ANCHORS = [START, END, DST, DST - US, DST + US, DST + timedelta(hours=1), DST + timedelta(hours=1, microseconds=1)]
ANCHORS += [START + timedelta(minutes=m) for m in (1, 17, 59, 60, 61, 119, 180)]


@pytest.fixture(scope="module")
def oracle_server() -> Iterator[LocalLogfire]:
    with LocalLogfire(records=RECORDS, workers=2) as srv:
        yield srv


@dataclass(frozen=True)
class Case:
    """A drawn query, its window and how the read is split."""

    sql: str
    order_by: list[str]
    may_refuse: bool
    """Shapes whose answer changes when split (RIGHT/FULL joins, a join over a subquery): refused, not sliced."""
    low: datetime | None
    high: datetime | None
    limit: int | None
    slices: int | timedelta | None


_COLUMNS = {
    "span_id": "r.span_id",
    "start_timestamp": "r.start_timestamp",
    "level": "r.level",
    "span_name": "r.span_name",
    "duration": "r.duration",
    "status": "r.http_response_status_code",
    "k": "r.attributes->>'k'",
    "d2": "r.duration * 2",
    "up": "upper(r.span_name)",
}
_PARTNER = {"partner_name": "p.span_name", "partner_start": "p.start_timestamp", "partner_duration": "p.duration"}
_JOINS = {
    "": "",
    "parent": "JOIN records p ON p.span_id = r.parent_span_id",
    "left parent": "LEFT JOIN records p ON p.span_id = r.parent_span_id",
    "children": "JOIN records_all p ON p.parent_span_id = r.span_id",
    "left children": "LEFT JOIN records p ON p.parent_span_id = r.span_id",
    "right": "RIGHT JOIN records p ON p.span_id = r.parent_span_id",
    "full": "FULL OUTER JOIN records p ON p.span_id = r.parent_span_id",
}
_FILTERS = [
    "r.level >= 13",
    "r.level = 'warn'",
    "r.duration > 0.5",
    "r.duration IS NULL",
    "r.http_response_status_code IS NULL",
    "r.span_name LIKE 'a%'",
    "r.attributes->>'k' = 'v1'",
    "r.kind = 'span'",
]


def _instants() -> st.SearchStrategy[datetime]:
    span = (END - START) // US + 1_200_000_000
    random = st.integers(0, span).map(lambda us: START - timedelta(minutes=10) + timedelta(microseconds=us))
    utc = st.one_of(st.sampled_from(ANCHORS), random)
    return st.tuples(utc, st.booleans()).map(lambda t: t[0].astimezone(PARIS) if t[1] else t[0])


@st.composite
def cases(draw: st.DrawFn) -> Case:
    source = draw(st.sampled_from(["records", "records_all", "(SELECT * FROM records WHERE level > 9)"]))
    join = draw(st.sampled_from(list(_JOINS)))
    available = _COLUMNS | (_PARTNER if join else {})
    names = draw(st.lists(st.sampled_from(list(available)), min_size=1, max_size=5, unique=True))
    projections = [
        available[n] if available[n] == f"r.{n}" and draw(st.booleans()) else f"{available[n]} AS {n}" for n in names
    ]
    atoms = draw(st.lists(st.sampled_from(_FILTERS), max_size=3))
    where = ""
    if atoms:
        glue = [draw(st.sampled_from([" AND ", " OR "])) for _ in atoms[1:]]
        where = " WHERE " + atoms[0] + "".join(g + a for g, a in zip(glue, atoms[1:], strict=True))
    keys = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    order = ""
    if keys:
        spelled = [
            k
            + draw(st.sampled_from(["", " ASC", " DESC"]))
            + draw(st.sampled_from(["", " NULLS FIRST", " NULLS LAST"]))
            for k in keys
        ]
        order = " ORDER BY " + ", ".join(spelled)
    sql = f"SELECT {', '.join(projections)} FROM {source} r {_JOINS[join]}{where}{order}"
    low, high = draw(st.one_of(st.none(), _instants())), draw(st.one_of(st.none(), _instants()))
    if low is not None and high is not None and low >= high:
        low, high = high, low + timedelta(seconds=1) if low == high else low
    return Case(
        sql,
        keys,
        join in ("right", "full") or (bool(join) and source.startswith("(")),
        low,
        high,
        draw(st.sampled_from([None, None, 5, 2_500, 12_000])),
        draw(st.sampled_from([None, 2, 5, 13, timedelta(minutes=7)])),
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_every_read_equals_the_unsplit_query(oracle_server: LocalLogfire, case: Case) -> None:
    want = run_unsplit(in_window(RECORDS, case.low, case.high, "start_timestamp"), case.sql)
    sent = SentQueries(oracle_server)
    try:
        got = logfire_io.read_logfire_arrow(
            case.sql,
            read_token=oracle_server.read_token,
            base_url=oracle_server.base_url,
            min_timestamp=case.low,
            max_timestamp=case.high,
            limit=case.limit,
            slices=case.slices,
            json_columns=None,
            progress=False,
        )
    except ConfigurationError as exc:  # refused before fetching: no request was sent
        assert case.may_refuse, exc
        assert "cannot be split by time" in str(exc)
        assert sent() == []
        event("refused before fetching")
        return
    except RowCapError as exc:  # refused after one request: the unsplit answer was at the cap
        assert case.may_refuse, exc
        assert want.num_rows >= logfire_io.MAX_LIMIT
        event("refused at the cap")
        return
    requests = len(sent())
    event("split" if requests > 1 else "one request")
    size = (
        "0" if not got.num_rows else "< 100" if got.num_rows < 100 else "< cap" if got.num_rows < 10_000 else ">= cap"
    )
    event(f"rows: {size}")
    assert_same_result(got, want, case.order_by, case.limit)


# Named regressions: each of these returned wrong rows, silently, before the reads were made exact.


_read = read


def _check(srv: LocalLogfire, sql: str, order_by: list[str], **kwargs: object) -> pa.Table:
    return check(RECORDS, srv, sql, order_by, **kwargs)


def test_order_by_with_limit_above_the_cap_returns_the_top_rows_not_the_first_in_time(
    oracle_server: LocalLogfire,
) -> None:
    got = _check(oracle_server, "SELECT span_id, duration FROM records ORDER BY duration", ["duration"], limit=12_000)
    assert got.num_rows == 12_000


def test_right_and_full_outer_joins_are_refused_before_any_request_when_they_must_be_split(
    oracle_server: LocalLogfire,
) -> None:
    for side in ("RIGHT", "FULL OUTER"):
        sql = f"SELECT r.span_id, p.span_id AS p FROM records r {side} JOIN records p ON p.span_id = r.parent_span_id"
        sent = SentQueries(oracle_server)
        with pytest.raises(ConfigurationError, match=f"{side.split()[0]} OUTER JOIN"):
            _read(oracle_server, sql, slices=3)
        assert sent() == []
        # Unsplit, the answer is exact: the unmatched partners are there.
        got = _check(oracle_server, sql, [], min_timestamp=DST, max_timestamp=DST + timedelta(minutes=5))
        assert None in got.column("span_id").to_pylist()


def test_a_join_with_an_open_window_keeps_partners_outside_each_slice(oracle_server: LocalLogfire) -> None:
    sql = "SELECT r.span_id, p.span_id AS parent FROM records r JOIN records p ON p.span_id = r.parent_span_id"
    _check(oracle_server, sql, [], slices=6)
    _check(oracle_server, sql, [], min_timestamp=DST, slices=3)
    # The driving rows start late; their parents do not: closing the open window at the driving rows' first
    # timestamp must not hide the parents.
    late = sql + f" WHERE r.start_timestamp >= '{DST.isoformat()}'"
    got = _check(oracle_server, late, [], slices=3)
    assert any(p < DST for p in _start_times(got.column("parent").to_pylist()))


def _start_times(span_ids: list[str]) -> list[datetime]:
    by_id = dict(zip(RECORDS.column("span_id").to_pylist(), RECORDS.column("start_timestamp").to_pylist(), strict=True))
    return [by_id[s] for s in span_ids]


def test_split_order_by_desc_puts_nulls_first_as_sql_does(oracle_server: LocalLogfire) -> None:
    window = {"min_timestamp": START, "max_timestamp": DST, "slices": 4}
    got = _check(oracle_server, "SELECT span_id, duration FROM records ORDER BY duration DESC", ["duration"], **window)
    assert got.column("duration")[0].as_py() is None
    got = _check(oracle_server, "SELECT span_id, duration FROM records ORDER BY 2 NULLS FIRST", ["duration"], **window)
    assert got.column("duration")[0].as_py() is None
    got = _check(
        oracle_server, "SELECT span_id, duration FROM records ORDER BY duration DESC NULLS LAST", ["duration"], **window
    )
    assert got.column("duration")[-1].as_py() is None


def test_joined_tables_see_exactly_the_window_not_a_microsecond_more(oracle_server: LocalLogfire) -> None:
    times = RECORDS.column("start_timestamp").to_pylist()
    parents = RECORDS.column("parent_span_id").to_pylist()
    ids = set(RECORDS.column("span_id").to_pylist())
    # A child whose parent starts later: a window ending exactly at the parent excludes it, one microsecond more not.
    child, parent_time = next(
        (i, t)
        for i, p in enumerate(parents)
        if p in ids and (t := _start_times([p])[0]) > times[i] + timedelta(seconds=1)
    )
    sql = "SELECT r.span_id, p.span_id AS parent FROM records_all r JOIN records_all p ON p.span_id = r.parent_span_id"
    got = _check(oracle_server, sql, [], min_timestamp=times[child], max_timestamp=parent_time, slices=2)
    assert RECORDS.column("span_id")[child].as_py() not in got.column("span_id").to_pylist()
    later = _check(oracle_server, sql, [], min_timestamp=times[child], max_timestamp=parent_time + US, slices=2)
    assert RECORDS.column("span_id")[child].as_py() in later.column("span_id").to_pylist()


def test_a_window_in_a_dst_zone_is_split_into_exact_utc_slices(oracle_server: LocalLogfire) -> None:
    low = datetime(2026, 3, 29, 1, 30, tzinfo=PARIS)  # 00:30 UTC
    high = datetime(2026, 3, 29, 3, 30, tzinfo=PARIS)  # 01:30 UTC: one hour later, two on the wall clock
    plan = logfire_io.plan_slices(low, high, 7)
    assert plan[0].low == low
    assert plan[-1].high == high
    assert all(a.high == b.low and a.low < a.high for a, b in pairwise(plan))
    assert sum((s.high - s.low for s in plan), timedelta()) == timedelta(hours=1)
    _check(oracle_server, "SELECT span_id FROM records", [], min_timestamp=low, max_timestamp=high, slices=7)


def test_nanosecond_bounds_keep_exactly_the_rows_they_cover(oracle_server: LocalLogfire) -> None:
    pd = pytest.importorskip("pandas")
    at = pd.Timestamp(DST)
    on_dst = RECORDS.column("start_timestamp").to_pylist().count(DST)  # the burst, and rows on whole minutes
    # [DST - 0.5 us, DST + 0.5 us) holds the burst at DST; truncating the bounds would move it out.
    low, high = at - pd.Timedelta(nanoseconds=500), at + pd.Timedelta(nanoseconds=500)
    got = _read(oracle_server, "SELECT span_id FROM records_all", min_timestamp=low, max_timestamp=high)
    assert got.num_rows == on_dst
    got = _read(
        oracle_server, "SELECT span_id FROM records_all", min_timestamp=low + pd.Timedelta(1, "ns"), max_timestamp=high
    )
    assert got.num_rows == on_dst
    got = _read(
        oracle_server,
        "SELECT span_id FROM records_all",
        min_timestamp=at + pd.Timedelta(1, "ns"),
        max_timestamp=high + pd.Timedelta(1, "us"),
    )
    assert got.num_rows == 0


def test_the_sql_sent_is_the_users_text_with_bounds_spliced_in(oracle_server: LocalLogfire) -> None:
    sql = (
        "SELECT span_id, to_char(start_timestamp, '%Y-%m') AS month, 2 ^ 3 AS p, round(duration, 1) AS rounded\n"
        "FROM records -- the driving table\nWHERE r_count IS NULL OR true ;"
    ).replace("r_count IS NULL OR ", "")
    sent = SentQueries(oracle_server)
    got = _read(oracle_server, sql, slices=3, min_timestamp=START, max_timestamp=END)
    texts = [q.sql for q in sent()]
    assert len(texts) >= 3
    head, tail = sql.split("records", 1)
    for text in texts:
        assert text.startswith(head + "(SELECT * FROM records WHERE ")
        assert text.endswith(") AS records" + tail)
    assert set(got.column("month").to_pylist()) == {"2026-03"}  # chrono's format, not PostgreSQL's 'YYYY-MM'
    assert set(got.column("p").to_pylist()) == {1}  # DataFusion's ^ is XOR; a re-print made it POWER (8.0)
    assert_same_result(got, run_unsplit(RECORDS, sql), [], None)


def test_scan_logfire_over_sql_keeps_order_comments_semicolons_and_slices(oracle_server: LocalLogfire) -> None:
    sql = "SELECT span_id, duration FROM records ORDER BY duration DESC NULLS LAST -- longest first\n;"
    kwargs = {"read_token": oracle_server.read_token, "base_url": oracle_server.base_url, "progress": False}
    window = {"min_timestamp": START, "max_timestamp": DST}
    want = run_unsplit(in_window(RECORDS, START, DST, "start_timestamp"), sql)
    lazy = logfire_io.scan_logfire(sql, slices=3, **window, **kwargs)  # type: ignore[arg-type]
    assert_same_result(lazy.collect().to_arrow(), want, ["duration"], None, arrow_types=False)
    assert_same_result(lazy.head(10).collect().to_arrow(), want, ["duration"], 10, arrow_types=False)
    filtered = lazy.filter(pl.col("duration") > 1).collect()
    assert filtered["duration"].to_list() == sorted(filtered["duration"].to_list(), reverse=True)


def test_cli_export_writes_what_read_logfire_returns_and_counts_what_it_wrote(
    oracle_server: LocalLogfire, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("LOGFIRE_READ_TOKEN", oracle_server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", oracle_server.base_url)
    out = tmp_path / "sorted.parquet"
    sql = "SELECT span_id, duration FROM records ORDER BY duration DESC"
    assert main(["query", sql, "--out", str(out), "--limit", "12000", "--no-progress"]) == 0
    want = run_unsplit(RECORDS, sql)
    assert_same_result(pl.read_parquet(out).to_arrow(), want, ["duration"], 12_000, arrow_types=False)
    assert "12,000 rows in" in capsys.readouterr().err


def test_a_sort_on_a_nested_column_is_refused_before_any_slice_is_fetched(oracle_server: LocalLogfire) -> None:
    sent = SentQueries(oracle_server)
    with pytest.raises(ConfigurationError, match="cannot sort"):
        _read(oracle_server, "SELECT span_id, tags FROM records ORDER BY tags", slices=3)
    assert len(sent()) == 1  # only the zero-row probe that tells the column's type


def test_a_full_first_answer_is_kept_and_its_rows_are_not_fetched_again(oracle_server: LocalLogfire) -> None:
    sent = SentQueries(oracle_server)
    _check(
        oracle_server, "SELECT span_id, start_timestamp FROM records_all", [], min_timestamp=START, max_timestamp=END
    )
    first, *rest = sent()
    assert "__logfire_t" in first.sql
    assert first.limit == logfire_io.MAX_LIMIT
    times = sorted(RECORDS.column("start_timestamp").to_pylist())
    resume_at = times[logfire_io.MAX_LIMIT - 1]
    assert times.index(resume_at) > 8_000  # the rows kept from the first answer (the rest sit on the DST burst)
    # Every later request (planning and slices) covers only what the first answer left: the hint is a
    # microsecond wider than the SQL's own bounds.
    assert rest
    assert all(q.min_timestamp is not None and q.min_timestamp >= resume_at - US for q in rest)
    assert min(q.min_timestamp for q in rest if q.min_timestamp) == resume_at - US


_KEPT_FIRST = [
    ("SELECT span_id, start_timestamp FROM records_all", []),
    ("SELECT span_id FROM records r WHERE r.level >= 13 OR r.duration IS NULL", []),
    ("SELECT span_id, start_timestamp AS t, duration FROM records ORDER BY t, duration DESC", ["t", "duration"]),
    ("SELECT * FROM records_all r WHERE r.duration > 0.1 ORDER BY r.start_timestamp", ["start_timestamp"]),
    ("SELECT span_id FROM records r WHERE r.parent_span_id IN (SELECT span_id FROM records_all WHERE level > 9)", []),
]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.sampled_from(_KEPT_FIRST),
    low=st.one_of(st.none(), _instants()),
    high=st.one_of(st.none(), _instants()),
)
def test_a_read_that_keeps_its_first_answer_equals_the_unsplit_query(
    oracle_server: LocalLogfire, query: tuple[str, list[str]], low: datetime | None, high: datetime | None
) -> None:
    if low is not None and high is not None and low >= high:
        low, high = high, low + US
    sql, order_by = query
    sent = SentQueries(oracle_server)
    _check(oracle_server, sql, order_by, min_timestamp=low, max_timestamp=high)
    event("kept a full first answer" if len(sent()) > 1 else "one request")
