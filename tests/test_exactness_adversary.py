"""Regressions found by an adversary of the exactness claims, each a minimal repro against the real server.

The server here answers ``min_timestamp``/``max_timestamp`` inclusively on both sides (``bounds="[]"``), so any
answer that leaned on the service's boundary semantics, instead of the bounds in its own SQL, shows up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext

import logfire_io
import polars as pl
from logfire_io import ConfigurationError
from logfire_io._protocol import checked_window
from logfire_io._sql import AGGREGATE_FUNCTIONS
from logfire_io.server import LocalLogfire
from logfire_io.server.udfs import register_udfs
from tests.helpers import SentQueries, make_records
from tests.oracle import assert_same_result, check, read, run_unsplit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMES = [T0 + timedelta(minutes=10 * i) for i in range(6)]
RECORDS = make_records(
    TIMES,
    span_id=list("edcbaf"),
    parent_span_id=[None, "f", "a", "e", "e", None],
    level=[1, 5, 9, 13, 17, 21],
    duration=[3.0, 0.0, -0.0, 1.5, 1.0, None],
)
WINDOW = {"min_timestamp": T0, "max_timestamp": T0 + timedelta(hours=1)}


@pytest.fixture(scope="module")
def tiny() -> Iterator[LocalLogfire]:
    with LocalLogfire(records=RECORDS, bounds="[]") as srv:
        yield srv


_read = read


def _check(srv: LocalLogfire, sql: str, order_by: list[str], **kwargs: object) -> pa.Table:
    return check(RECORDS, srv, sql, order_by, **kwargs)


def _refused_before_any_request(srv: LocalLogfire, sql: str, match: str, **kwargs: object) -> None:
    sent = SentQueries(srv)
    with pytest.raises(ConfigurationError, match=match):
        _read(srv, sql, **kwargs)
    assert sent() == []


@pytest.mark.parametrize(
    ("sql", "order_by"),
    [
        ("SELECT level AS lvl, duration AS level FROM records ORDER BY level DESC", ["level"]),
        (
            "SELECT span_id AS start_timestamp, start_timestamp AS t FROM records ORDER BY start_timestamp",
            ["start_timestamp"],
        ),
    ],
)
def test_order_by_an_output_name_wins_over_the_input_column_of_that_name(
    tiny: LocalLogfire, sql: str, order_by: list[str]
) -> None:
    _check(tiny, sql, order_by, slices=3, **WINDOW)
    lazy = logfire_io.scan_logfire(sql, read_token=tiny.read_token, base_url=tiny.base_url, slices=3, **WINDOW)
    assert_same_result(lazy.collect().to_arrow(), run_unsplit(RECORDS, sql), order_by, None, arrow_types=False)


def test_order_by_another_tables_column_behind_a_qualified_star_is_not_split(tiny: LocalLogfire) -> None:
    sql = "SELECT r.* FROM records r JOIN records p ON p.span_id = r.parent_span_id ORDER BY p.level"
    _refused_before_any_request(tiny, sql, "cannot be split", slices=3, **WINDOW)
    _check(tiny, sql, [], **WINDOW)  # unsplit, the server orders it (two rows tie on p.level)


@pytest.mark.parametrize("function", ["approx_median", "mean", "var", "quantile_cont"])
def test_aggregates_only_datafusion_knows_by_name_are_not_split(tiny: LocalLogfire, function: str) -> None:
    argument = "duration, 0.5" if function == "quantile_cont" else "duration"
    sql = f"SELECT {function}({argument}) AS m FROM records"
    _refused_before_any_request(tiny, sql, "aggregate", slices=3, **WINDOW)
    _check(tiny, sql, [], **WINDOW)


def test_the_aggregate_list_names_every_aggregate_and_window_function_of_the_engine() -> None:
    ctx = SessionContext(SessionConfig().with_information_schema(True))
    register_udfs(ctx)  # Logfire's metric_* aggregates too
    engine = ctx.sql(
        "SELECT DISTINCT routine_name FROM information_schema.routines WHERE function_type IN ('AGGREGATE', 'WINDOW')"
    ).to_pydict()["routine_name"]
    assert set(engine) <= AGGREGATE_FUNCTIONS


def test_a_schema_qualified_logfire_table_is_not_split(tiny: LocalLogfire) -> None:
    sql = "SELECT r.span_id, p.span_id AS pid FROM records r JOIN public.records p ON p.span_id = r.parent_span_id"
    _refused_before_any_request(tiny, sql, "with a schema", slices=3, **WINDOW)


def test_a_query_that_is_not_split_carries_its_window_in_its_sql(tiny: LocalLogfire) -> None:
    # The server's window is inclusive on both sides here; the SQL's own bounds keep [low, high) exact.
    got = _check(tiny, "SELECT count(*) AS n FROM records", [], min_timestamp=TIMES[1], max_timestamp=TIMES[3])
    assert got.column("n").to_pylist() == [2]
    _check(
        tiny,
        "SELECT span_id FROM records UNION ALL SELECT span_id FROM records_all",
        [],
        min_timestamp=TIMES[1],
        max_timestamp=TIMES[3],
    )


def test_numpy_bounds_are_exact_or_refused() -> None:
    low, high = checked_window(np.datetime64(1_000_001, "ps"), np.datetime64("2026-03"))
    assert low == datetime(1970, 1, 1, 0, 0, 0, 2, tzinfo=UTC)  # a picosecond past 1 us rounds up to 2 us
    assert high == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in (np.datetime64("2300-01-01"), np.datetime64("1600-01-01"), np.datetime64("NaT")):
        with pytest.raises(ConfigurationError, match="not a time Logfire can query"):
            logfire_io.read_logfire_arrow("SELECT 1", min_timestamp=bad, read_token="pylf_v1_us_x" * 3)  # type: ignore[arg-type]
    pd = pytest.importorskip("pandas")
    with pytest.raises(ConfigurationError, match="not a time Logfire can query"):
        logfire_io.read_logfire_arrow("SELECT 1", max_timestamp=pd.NaT, read_token="pylf_v1_us_x" * 3)


def test_scan_pushdown_never_drops_a_cast(tiny: LocalLogfire) -> None:
    lazy = logfire_io.scan_logfire("records", read_token=tiny.read_token, base_url=tiny.base_url, **WINDOW)
    everything = pl.from_arrow(RECORDS)
    for predicate in (
        pl.col("duration").cast(pl.Int64) == 1,
        pl.col("start_timestamp").cast(pl.Datetime("ms", "UTC")) <= TIMES[2] + timedelta(microseconds=900),
    ):
        got = lazy.filter(predicate).select("span_id").collect()["span_id"].sort().to_list()
        assert got == everything.filter(predicate)["span_id"].sort().to_list()  # type: ignore[union-attr]


def test_a_split_sort_orders_negative_zero_before_zero(tiny: LocalLogfire) -> None:
    got = _check(tiny, "SELECT span_id, duration FROM records ORDER BY duration", ["duration"], slices=4, **WINDOW)
    zeros = [d for d in got.column("duration").to_pylist() if d == 0]
    assert [math.copysign(1, z) for z in zeros] == [-1, 1]


def test_duplicate_output_names_are_a_clear_error(tiny: LocalLogfire) -> None:
    sql = "SELECT * FROM records r JOIN records p ON p.span_id = r.parent_span_id"
    with pytest.raises(ConfigurationError, match="more than one column named"):
        _read(tiny, sql, slices=3, **WINDOW)
    with pytest.raises(ConfigurationError, match="more than one column named"):
        logfire_io.read_logfire(sql, read_token=tiny.read_token, base_url=tiny.base_url, **WINDOW)


def test_a_sort_on_a_type_the_merge_cannot_sort_is_refused_before_any_slice(tiny: LocalLogfire) -> None:
    sent = SentQueries(tiny)
    with pytest.raises(ConfigurationError, match="cannot sort"):
        _read(tiny, "SELECT span_id, INTERVAL '1 day' AS iv FROM records ORDER BY iv", slices=3, **WINDOW)
    assert len(sent()) == 1  # the zero-row probe only


def test_bad_arguments_are_refused_before_any_request(tiny: LocalLogfire) -> None:
    for slices in (0, -1, "3", 2.0, True, timedelta(0)):
        _refused_before_any_request(tiny, "SELECT span_id FROM records", "slices", slices=slices)
    with pytest.raises(ConfigurationError, match="slices"):
        logfire_io.scan_logfire("records", read_token=tiny.read_token, base_url=tiny.base_url, slices=0)  # type: ignore[arg-type]
    _check(tiny, "SELECT span_id FROM records", [], slices=np.int64(2), **WINDOW)
    with pytest.raises(TypeError, match="sql_or_table"):
        logfire_io.scan_logfire(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty"):
        logfire_io.plan("", read_token=tiny.read_token, base_url=tiny.base_url)


def test_windows_at_the_documented_limits_and_empty_windows_are_answered(tiny: LocalLogfire) -> None:
    edge = datetime(1678, 1, 1, tzinfo=UTC)
    assert _read(tiny, "SELECT span_id FROM records", min_timestamp=edge).num_rows == 6
    assert _read(tiny, "SELECT span_id FROM records", min_timestamp=T0, max_timestamp=T0, slices=3).num_rows == 0


def test_an_export_keeps_join_partners_in_other_periods(tiny: LocalLogfire, tmp_path: Path) -> None:
    late_child = make_records(
        [T0 + timedelta(hours=1, minutes=10)], span_id=["child"], trace_id=["t"], parent_span_id=["f"]
    )
    sql = "SELECT r.span_id, p.span_id AS parent FROM records r JOIN records p ON p.span_id = r.parent_span_id"
    with LocalLogfire(records=pa.concat_tables([RECORDS, late_child], promote_options="permissive")) as srv:
        kwargs = {"read_token": srv.read_token, "base_url": srv.base_url}
        logfire_io.export(sql, tmp_path, min_timestamp=T0, max_timestamp=T0 + timedelta(hours=2), **kwargs)  # type: ignore[arg-type]
        want = _read(srv, sql, min_timestamp=T0, max_timestamp=T0 + timedelta(hours=2))
    got = pl.scan_parquet(tmp_path / "**/*.parquet", hive_partitioning=True).select("span_id", "parent").collect()
    assert sorted(got.rows()) == sorted(zip(*want.to_pydict().values(), strict=True))
    assert ("child", "f") in got.rows()


@pytest.mark.parametrize(
    ("sql", "kwargs"),
    [
        ("SELECT span_id FROM records ORDER BY duration DESC", {"slices": 3}),
        (
            "SELECT span_id, duration FROM records ORDER BY duration DESC",
            {"slices": 3, "min_timestamp": T0 + timedelta(days=1)},
        ),
        ("SELECT * FROM (SELECT span_id, level FROM records) x WHERE level = 17", {}),
    ],
)
def test_plan_matches_the_read(tiny: LocalLogfire, sql: str, kwargs: dict[str, object]) -> None:
    auth = {"read_token": tiny.read_token, "base_url": tiny.base_url}
    try:
        planned = logfire_io.plan(sql, **auth, **kwargs)  # type: ignore[arg-type]
    except ConfigurationError as refused:
        with pytest.raises(ConfigurationError, match=str(refused)[:40]):
            _read(tiny, sql, **kwargs)
        return
    sent = SentQueries(tiny)
    _read(tiny, sql, **kwargs)
    assert len(sent()) == planned.requests
