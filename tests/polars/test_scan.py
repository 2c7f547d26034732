"""scan_logfire: lazy, with projection, predicate and limit pushdown, always exact."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polars as pl
from logfire_io import AuthenticationError, ConfigurationError, QueryExecutionError
from logfire_io.polars import scan_logfire
from logfire_io.server import LocalLogfire
from tests.conftest import DEMO_END
from tests.helpers import SentQueries
from tests.strategies import boolean_combinations

WINDOW_START = DEMO_END - timedelta(days=2)
COLUMNS = [
    "start_timestamp",
    "span_id",
    "level",
    "span_name",
    "service_name",
    "duration",
    "http_response_status_code",
    "is_exception",
]


@pytest.fixture(scope="module")
def everything(server: LocalLogfire) -> pl.DataFrame:
    return scan_logfire("records", read_token=server.read_token, base_url=server.base_url).select(COLUMNS).collect()


def _scan(server: LocalLogfire) -> pl.LazyFrame:
    return scan_logfire("records", read_token=server.read_token, base_url=server.base_url, progress=False)


def test_projection_pushdown(server: LocalLogfire) -> None:
    sent = SentQueries(server)
    frame = _scan(server).select("span_name", "level").head(10).collect()
    assert frame.columns == ["span_name", "level"]
    requests = sent()
    assert [q.sql for q in requests] == ['SELECT "level", "span_name" FROM records']  # schema order, nothing else


def test_head_stops_early(server: LocalLogfire) -> None:
    sent = SentQueries(server)
    assert _scan(server).head(5).collect().height == 5
    requests = sent()
    assert len(requests) == 1
    assert requests[0].limit == 5


def test_time_bounds_become_the_window(server: LocalLogfire) -> None:
    low = WINDOW_START + timedelta(hours=5)
    high = low + timedelta(hours=1)
    sent = SentQueries(server)
    frame = _scan(server).filter((pl.col("start_timestamp") >= low) & (pl.col("start_timestamp") < high)).collect()
    assert frame["start_timestamp"].min() >= low
    assert frame["start_timestamp"].max() < high
    first = sent()[0]
    assert first.min_timestamp == low - timedelta(microseconds=1)
    assert first.max_timestamp == high + timedelta(microseconds=1)


def test_untranslatable_filter_is_applied_locally(server: LocalLogfire, everything: pl.DataFrame) -> None:
    predicate = pl.col("span_name").str.contains(r"^GET /api/(users|orders)") & (pl.col("level") >= 13)
    sent = SentQueries(server)
    got = _scan(server).filter(predicate).select(COLUMNS).collect()
    assert got.sort("span_id").equals(everything.filter(predicate).sort("span_id"))
    assert '"level" >= 13' in sent()[0].sql  # the translatable half still went to the server


@pytest.mark.parametrize("engine", ["streaming", "in-memory"])
def test_engines_and_sink(server: LocalLogfire, everything: pl.DataFrame, engine: str, tmp_path: Path) -> None:
    lf = _scan(server).filter(pl.col("level") >= 13).select(COLUMNS)
    expected = everything.filter(pl.col("level") >= 13).sort("span_id")
    assert lf.collect(engine=engine).sort("span_id").equals(expected)  # type: ignore[arg-type]
    lf.sink_parquet(tmp_path / "out.parquet")
    assert pl.read_parquet(tmp_path / "out.parquet").sort("span_id").equals(expected)


def test_scan_of_a_query(server: LocalLogfire) -> None:
    lf = scan_logfire(
        "SELECT span_name, level, attributes->>'http.route' AS route FROM records WHERE level >= 'warn'",
        read_token=server.read_token,
        base_url=server.base_url,
    )
    assert lf.collect_schema() == pl.Schema({"span_name": pl.String, "level": pl.Int32, "route": pl.String})
    frame = lf.filter(pl.col("route").is_not_null()).collect()
    assert frame.height > 0
    assert (frame["level"] >= 13).all()


@pytest.mark.parametrize("json_columns", ["infer", ["attributes"]])
def test_scan_rejects_json_columns_it_cannot_declare(json_columns: object) -> None:
    with pytest.raises(ConfigurationError, match="'auto' or None"):
        scan_logfire("records", read_token="t", base_url="http://127.0.0.1:9", json_columns=json_columns)  # type: ignore[arg-type]


SERVICES = ["api-gateway", "checkout", "billing-worker", "llm-assistant", "search", "nope"]
atoms = st.one_of(
    st.tuples(
        st.sampled_from(["level"]),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.sampled_from([1, 5, 9, 13, 17, 21]),
    ).map(
        lambda t: {
            "==": pl.col(t[0]) == t[2],
            "!=": pl.col(t[0]) != t[2],
            "<": pl.col(t[0]) < t[2],
            "<=": pl.col(t[0]) <= t[2],
            ">": pl.col(t[0]) > t[2],
            ">=": pl.col(t[0]) >= t[2],
        }[t[1]]
    ),
    st.sampled_from(SERVICES).map(lambda s: pl.col("service_name") == s),
    st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3).map(lambda v: pl.col("service_name").is_in(v)),
    st.sampled_from(["duration", "http_response_status_code"]).map(lambda c: pl.col(c).is_null()),
    st.sampled_from(["duration", "http_response_status_code"]).map(lambda c: pl.col(c).is_not_null()),
    st.sampled_from(["GET", "POST", "SELECT", "user"]).map(lambda p: pl.col("span_name").str.starts_with(p)),
    st.sampled_from(["orders", "{id}", "'"]).map(lambda p: pl.col("span_name").str.contains(p, literal=True)),
    st.sampled_from(["}", "s", "logged in"]).map(lambda p: pl.col("span_name").str.ends_with(p)),
    st.floats(0.001, 0.2).map(lambda f: pl.col("duration") > f),
    st.booleans().map(lambda b: pl.col("is_exception") == b),
    st.integers(0, 47).map(lambda h: pl.col("start_timestamp") >= WINDOW_START + timedelta(hours=h)),
    st.integers(0, 47).map(lambda h: pl.col("start_timestamp") < WINDOW_START + timedelta(hours=h)),
    st.just(pl.col("span_name").str.len_chars() > 12),  # not translatable: must be filtered locally
)
predicates = boolean_combinations(atoms)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(predicate=predicates)
def test_pushdown_returns_the_same_rows_as_filtering_everything(
    server: LocalLogfire, everything: pl.DataFrame, predicate: pl.Expr
) -> None:
    sent = SentQueries(server)
    got = _scan(server).filter(predicate).select(COLUMNS).collect()
    expected = everything.filter(predicate)
    assert got.sort("span_id").equals(expected.sort("span_id"))
    data_requests = [
        q.sql
        for q in sent()
        if "__logfire_q" not in q.sql  # not planning queries
    ]
    assert all('"span_id"' in sql for sql in data_requests)  # none at all when the bounds leave no window
    assert all("attributes" not in sql for sql in data_requests)  # only the needed columns are requested


def test_13_a_refused_query_raises_its_own_error_not_compute_error(server: LocalLogfire) -> None:
    """polars wraps what a schema callback raises in a ComputeError; the probe runs as the scan is built."""
    with pytest.raises(QueryExecutionError, match="nope"):
        scan_logfire("SELECT nope FROM records", read_token=server.read_token, base_url=server.base_url)


@pytest.mark.parametrize("sql_or_table", ["records", "SELECT span_id, level FROM records"])
def test_13_an_error_while_collecting_is_the_logfire_io_error(server: LocalLogfire, sql_or_table: str) -> None:
    lf = scan_logfire(sql_or_table, read_token=server.read_token, base_url=server.base_url, progress=False)
    server.faults.push("401")
    try:
        with pytest.raises(AuthenticationError, match="read token"):
            lf.select("span_id").head(3).collect()
    finally:
        server.faults.configure(None)
    assert lf.select("span_id").head(3).collect().height == 3  # the scan itself still works


def test_a_table_scan_sends_nothing_until_collected(server: LocalLogfire) -> None:
    """Only a SQL query's schema probe (or ``json_columns='auto'``) asks the service as the scan is built."""
    sent = SentQueries(server)
    lazy = scan_logfire("records", read_token=server.read_token, base_url=server.base_url, progress=False)
    assert sent() == []
    assert lazy.select(pl.len()).collect().item() > 0
    assert sent()
