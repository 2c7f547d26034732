"""The synthetic telemetry is deterministic, consistent and as messy as real data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import polars as pl
from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server import synth_metrics, synth_records

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
    assert set(metrics["metric_type"].unique()) == {"gauge", "sum", "histogram"}
    histograms = metrics.filter(pl.col("metric_type") == "histogram")
    assert (histograms["histogram_bucket_counts"].list.sum() == histograms["histogram_count"]).all()
    assert metrics.group_by("recorded_timestamp").len()["len"].min() > 1
