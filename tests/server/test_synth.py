"""The synthetic telemetry is deterministic, consistent and as messy as real data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import polars as pl
from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server import LocalLogfire, synth_metrics, synth_records
from tests.conftest import DEMO_ROWS

END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def records() -> pl.DataFrame:
    table = synth_records(30_000, seed=3, end=END)
    assert table.schema == RECORDS_SCHEMA
    return pl.from_arrow(table)  # type: ignore[return-value]


def test_deterministic_by_seed() -> None:
    assert synth_records(2_000, seed=1, end=END).equals(synth_records(2_000, seed=1, end=END))
    assert not synth_records(2_000, seed=1, end=END).equals(synth_records(2_000, seed=2, end=END))
    assert synth_metrics(500, seed=1, end=END).equals(synth_metrics(500, seed=1, end=END))


def test_window_and_order(records: pl.DataFrame) -> None:
    assert records["start_timestamp"].is_sorted()
    assert records["start_timestamp"].min() >= END - timedelta(days=2)
    assert records["start_timestamp"].max() < END
    assert (records["end_timestamp"] >= records["start_timestamp"]).all()


def test_traces_are_consistent(records: pl.DataFrame) -> None:
    assert records["span_id"].n_unique() == len(records)
    children = records.filter(pl.col("parent_span_id").is_not_null())
    joined = children.join(
        records.select("span_id", parent_trace="trace_id", parent_start="start_timestamp", parent_kind="kind"),
        left_on="parent_span_id",
        right_on="span_id",
    )
    assert len(joined) == len(children)
    assert (joined["trace_id"] == joined["parent_trace"]).all()
    assert (joined["parent_start"] <= joined["start_timestamp"]).all()
    assert set(joined["parent_kind"].unique()) <= {"span", "pending_span"}


def test_realistic_mix(records: pl.DataFrame) -> None:
    kinds = dict(records["kind"].value_counts().iter_rows())
    assert kinds["span"] > kinds["log"] > kinds["pending_span"] > 0
    levels = dict(records["level"].value_counts().iter_rows())
    assert levels[9] > len(records) / 2
    assert {1, 5, 9, 13, 17, 21} <= set(levels)
    exceptions = records.filter(pl.col("is_exception"))
    assert len(exceptions) > 0
    assert exceptions["exception_stacktrace"].str.starts_with("Traceback").all()
    assert exceptions["otel_events"].str.contains('"exception.type"').all()
    assert records["deployment_environment"].n_unique() == 3
    assert records["service_name"].n_unique() >= 4
    assert records["tags"].list.len().max() == 2


def test_messy_json_attributes(records: pl.DataFrame) -> None:
    attributes = records["attributes"].drop_nulls()
    assert attributes.str.contains('"http.method"').any()  # dotted keys
    assert attributes.str.contains('"gen_ai.request.model"').any()
    assert attributes.str.contains('"result":{', literal=True).any()  # nested objects
    assert attributes.str.contains('"user_id":"u-').any()
    assert attributes.str.contains('"user_id":[0-9]').any()


def test_bursts_and_round_times(records: pl.DataFrame) -> None:
    assert records.group_by("start_timestamp").len()["len"].max() >= 50  # many rows on one microsecond
    starts = records["start_timestamp"]
    assert (starts.dt.truncate("1m") == starts).sum() > 10
    assert (starts.dt.truncate("1h") == starts).sum() > 0


def test_metrics() -> None:
    metrics = pl.from_arrow(synth_metrics(3_000, seed=0, end=END))
    assert synth_metrics(3_000, seed=0, end=END).schema == METRICS_SCHEMA
    assert set(metrics["metric_type"].unique()) == {"gauge", "sum", "exponential_histogram"}
    histograms = metrics.filter(pl.col("metric_type") == "exponential_histogram")
    assert (histograms["exp_histogram_positive_bucket_counts"].list.sum() == histograms["histogram_count"]).all()
    assert (histograms["histogram_min"] * histograms["histogram_count"] <= histograms["histogram_sum"] + 1e-3).all()
    assert (histograms["histogram_sum"] <= histograms["histogram_max"] * histograms["histogram_count"] + 1e-3).all()
    # The smallest and largest observations fall in the first and last buckets: (2**(k/8), 2**((k+1)/8)].
    first = histograms["exp_histogram_positive_bucket_counts_offset"]
    last = first + histograms["exp_histogram_positive_bucket_counts"].list.len() - 1
    step = 2.0 ** -histograms["exp_histogram_scale"]
    assert (
        (2.0 ** (first * step) < histograms["histogram_min"])
        & (histograms["histogram_min"] <= 2.0 ** ((first + 1) * step))
    ).all()
    assert (
        (2.0 ** (last * step) < histograms["histogram_max"])
        & (histograms["histogram_max"] <= 2.0 ** ((last + 1) * step))
    ).all()
    assert metrics.group_by("recorded_timestamp").len()["len"].min() > 1


# Issue 11: synthetic data as the logfire SDK writes it, checked through the server over loopback.
_FRAME = re.compile(r'  File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<function>\w+)\n    \S')


def _rows(http: httpx.Client, sql: str) -> list[dict[str, Any]]:
    response = http.post("/v2/query", json={"sql": sql, "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_11_sdk_spans_and_logs_carry_code_attributes(http: httpx.Client) -> None:
    rows = _rows(
        http,
        "SELECT otel_scope_name AS scope, attributes->>'code.filepath' AS path, "
        "attributes->'code.lineno' AS line, attributes->>'code.function' AS function FROM records",
    )
    sdk = [r for r in rows if r["scope"] == "logfire"]
    assert sdk
    assert all(r["path"].startswith("app/") and r["path"].endswith(".py") for r in sdk)
    assert all(r["line"].isdigit() and r["function"] for r in sdk)
    assert len({r["function"] for r in sdk}) >= 5
    assert any("." in r["function"] for r in sdk)  # qualified names, as the SDK records them (Class.method)
    others = [r for r in rows if r["scope"].startswith("opentelemetry.instrumentation.")]
    assert others
    assert all(r["path"] is None for r in others)  # OpenTelemetry's own spans have no code.* attributes


def test_11_exceptions_come_from_several_files_with_tracebacks_naming_them(http: httpx.Client) -> None:
    rows = _rows(
        http,
        "SELECT exception_type, exception_message, exception_stacktrace AS stack, otel_events, "
        "attributes->>'code.filepath' AS path, attributes->>'code.function' AS function "
        "FROM records WHERE is_exception",
    )
    assert len(rows) > 50
    frames = [[m.groupdict() for m in _FRAME.finditer(r["stack"])] for r in rows]
    assert all(len(f) >= 2 for f in frames)
    assert len({f["path"] for stack in frames for f in stack}) >= 8
    assert len({f["function"] for stack in frames for f in stack}) >= 8
    for row, stack in zip(rows, frames, strict=True):
        assert row["stack"].endswith(f"\n{row['exception_type']}: {row['exception_message']}")
        event = row["otel_events"][0]["attributes"]  # the server answers JSON columns as JSON
        assert event["exception.stacktrace"] == row["stack"]
        if row["path"] is not None:  # the span's own call site is the outermost frame of its traceback
            assert stack[0]["path"].endswith("/" + row["path"])
            assert stack[0]["function"] == row["function"].rsplit(".", 1)[-1]


def test_11_find_the_exceptions_in_one_file(http: httpx.Client) -> None:
    """What an agent's "exceptions in this file" tool asks, answered with rows that name the file."""
    rows = _rows(
        http,
        "SELECT exception_stacktrace FROM records WHERE is_exception "
        "AND attributes->>'code.filepath' = 'app/llm/assistant.py'",
    )
    assert rows
    assert all('/app/llm/assistant.py", line' in r["exception_stacktrace"] for r in rows)


def test_11_demo_rows_are_rows_of_records_all(server: LocalLogfire, http: httpx.Client) -> None:
    counts = _rows(
        http,
        "SELECT (SELECT count(*) FROM records_all) AS everything, (SELECT count(*) FROM records) AS visible, "
        "(SELECT count(*) FROM records_all WHERE kind = 'pending_span') AS pending",
    )[0]
    assert counts["everything"] == DEMO_ROWS == server.num_records
    assert counts["pending"] > 0
    assert counts["visible"] == DEMO_ROWS - counts["pending"]


def test_11_default_window_ends_at_the_server_start_not_in_the_future() -> None:
    before = datetime.now(UTC)
    with (
        LocalLogfire(demo_rows=3_000, demo_span=timedelta(hours=1), workers=1) as srv,
        httpx.Client(base_url=srv.base_url, headers={"authorization": srv.read_token}) as http,
    ):
        after = datetime.now(UTC)
        records = _rows(
            http,
            "SELECT max(start_timestamp) AS last_start, max(end_timestamp) AS last_end, "
            "max(created_at) AS last_created, count(*) FILTER (WHERE end_timestamp > now()) AS future FROM records_all",
        )[0]
        metrics = _rows(http, "SELECT max(recorded_timestamp) AS last, max(created_at) AS created FROM metrics")[0]
    assert records["future"] == 0
    for value in (records["last_end"], records["last_created"], metrics["last"], metrics["created"]):
        assert datetime.fromisoformat(value) <= after
    assert datetime.fromisoformat(records["last_start"]) > before - timedelta(minutes=5)  # recent: ends at the start
