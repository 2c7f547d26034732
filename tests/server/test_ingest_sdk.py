"""End to end with the real `logfire` SDK: instrument, export to the local server, read the rows back.

The oracle is what the test itself did with the SDK (names, attribute values, levels, tags, the exception), not
anything computed by the server's mapping code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import logfire
import pytest

import logfire_io  # noqa: F401 - registers pl.read_logfire
import polars as pl
from logfire_io.server import LocalLogfire

SINCE = datetime.now(UTC) - timedelta(hours=1)
LEVELS = ("trace", "debug", "info", "notice", "warn", "error", "fatal")
ATTRIBUTES = {
    "a_str": "text with 'quotes' and ünïcode",
    "an_int": 42,
    "a_float": 1.5,
    "a_bool": True,
    "a_none": None,
    "a_list": [1, "two", 3.0, None, [4]],
    "a_dict": {"nested": {"deep": [1, 2]}, "k": "v"},
}


@pytest.fixture(scope="module")
def ingested() -> Iterator[tuple[LocalLogfire, pl.DataFrame, pl.DataFrame]]:
    with LocalLogfire(demo_rows=0) as srv:
        logfire.configure(
            token=srv.write_token,
            advanced=logfire.AdvancedOptions(base_url=srv.base_url),
            console=False,
            send_to_logfire=True,
            service_name="ingest-e2e",
            service_version="9.9.9",
            environment="ci",
            inspect_arguments=False,
        )
        with logfire.span("outer {a_str}", _tags=["e2e", "outer"], **ATTRIBUTES):
            with logfire.span("inner span", step=1):
                for level in LEVELS:
                    logfire.log(level, "log at {level}", {"level": level})
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                logfire.exception("it failed: {why}", why="division")
            with logfire.span("still open {n}", n=7):
                logfire.force_flush()  # exports the pending span while this span is open
        logfire.metric_counter("e2e.counter", unit="1", description="things counted").add(5, {"route": "/x"})
        histogram = logfire.metric_histogram("e2e.histogram", unit="ms")
        for value in (1.0, 10.0, 100.0):
            histogram.record(value)
        logfire.force_flush()
        kwargs = {"read_token": srv.read_token, "base_url": srv.base_url, "min_timestamp": SINCE}
        records = pl.read_logfire("SELECT * FROM records_all", json_columns=None, **kwargs)
        metrics = pl.read_logfire("SELECT * FROM metrics", json_columns=None, **kwargs)
        yield srv, records, metrics
        logfire.shutdown()


def _row(records: pl.DataFrame, span_name: str, kind: str = "span") -> dict:
    rows = records.filter((pl.col("span_name") == span_name) & (pl.col("kind") == kind)).to_dicts()
    assert len(rows) == 1, (span_name, kind, records.select("span_name", "kind").to_dicts())
    return rows[0]


def test_spans_nest_and_carry_their_attributes(ingested: tuple) -> None:
    _, records, _ = ingested
    outer = _row(records, "outer {a_str}")
    inner = _row(records, "inner span")
    assert outer["message"] == f"outer {ATTRIBUTES['a_str']}"
    decoded = json.loads(outer["attributes"])
    for key, value in ATTRIBUTES.items():
        assert decoded[key] == value, key
    assert not any(key.startswith("logfire.") for key in decoded)
    assert outer["tags"] == ["e2e", "outer"]
    assert outer["parent_span_id"] is None
    assert inner["parent_span_id"] == outer["span_id"]
    assert inner["trace_id"] == outer["trace_id"]
    assert len(outer["trace_id"]) == 32
    assert outer["trace_id"] == outer["trace_id"].lower()
    assert len(outer["span_id"]) == 16
    assert outer["start_timestamp"] <= inner["start_timestamp"] <= inner["end_timestamp"] <= outer["end_timestamp"]
    expected = (outer["end_timestamp"] - outer["start_timestamp"]).total_seconds()
    assert outer["duration"] == pytest.approx(expected, abs=1e-6)
    assert json.loads(outer["attributes_json_schema"])["properties"]["a_dict"]["type"] == "object"
    assert outer["otel_scope_name"] == "logfire"
    assert outer["otel_status_code"] == "UNSET"
    assert outer["is_exception"] is False


def test_resource_columns(ingested: tuple) -> None:
    _, records, metrics = ingested
    import os

    for frame in (records, metrics):
        row = frame.row(0, named=True)
        assert row["service_name"] == "ingest-e2e"
        assert row["service_version"] == "9.9.9"
        assert row["deployment_environment"] == "ci"
        assert row["process_pid"] == os.getpid()
        assert row["telemetry_sdk_name"] == "opentelemetry"
        assert row["telemetry_sdk_language"] == "python"
        assert json.loads(row["otel_resource_attributes"])["service.name"] == "ingest-e2e"
        assert row["created_at"] >= row["start_timestamp"]
        assert row["day"] == row["created_at"].date() or row["day"] == row["start_timestamp"].date()


def test_logs_at_each_level(ingested: tuple) -> None:
    _, records, _ = ingested
    logs = records.filter(pl.col("span_name") == "log at {level}").sort("level")
    assert logs["level"].to_list() == [1, 5, 9, 10, 13, 17, 21]
    assert logs["kind"].unique().to_list() == ["log"]
    assert logs["message"].to_list() == [
        f"log at {n}" for n in ("trace", "debug", "info", "notice", "warn", "error", "fatal")
    ]
    assert logs["duration"].null_count() == len(logs)
    inner = _row(records, "inner span")
    assert set(logs["parent_span_id"]) == {inner["span_id"]}


def test_exception(ingested: tuple) -> None:
    _, records, _ = ingested
    row = _row(records, "it failed: {why}", kind="log")
    assert row["is_exception"] is True
    assert row["exception_type"] == "ZeroDivisionError"
    assert row["exception_message"] == "division by zero"
    assert "1 / 0" in row["exception_stacktrace"]
    assert row["level"] == 17
    assert row["otel_status_code"] == "ERROR"
    assert row["otel_status_message"] == "ZeroDivisionError: division by zero"
    assert json.loads(row["otel_events"])[0]["name"] == "exception"
    assert json.loads(row["attributes"])["why"] == "division"


def test_pending_span_only_in_records_all(ingested: tuple) -> None:
    srv, records, _ = ingested
    pending = _row(records, "still open {n}", kind="pending_span")
    final = _row(records, "still open {n}", kind="span")
    assert pending["parent_span_id"] == final["span_id"]
    assert pending["start_timestamp"] == final["start_timestamp"]
    visible = pl.read_logfire(
        "SELECT kind FROM records WHERE span_name = 'still open {n}'",
        read_token=srv.read_token,
        base_url=srv.base_url,
        min_timestamp=SINCE,
    )
    assert visible["kind"].to_list() == ["span"]


def test_metrics(ingested: tuple) -> None:
    _, _, metrics = ingested
    counter = metrics.filter(pl.col("metric_name") == "e2e.counter").to_dicts()
    assert len(counter) == 1
    assert counter[0]["metric_type"] == "sum"
    assert counter[0]["scalar_value"] == 5.0
    assert counter[0]["is_monotonic"] is True
    assert counter[0]["aggregation_temporality"] == "delta"
    assert counter[0]["unit"] == "1"
    assert counter[0]["metric_description"] == "things counted"
    assert json.loads(counter[0]["attributes"]) == {"route": "/x"}
    histogram = metrics.filter(pl.col("metric_name") == "e2e.histogram").to_dicts()
    assert len(histogram) == 1
    point = histogram[0]
    assert point["metric_type"] == "exponential_histogram"  # the logfire SDK's default histogram aggregation
    assert (point["histogram_count"], point["histogram_sum"]) == (3, 111.0)
    assert (point["histogram_min"], point["histogram_max"]) == (1.0, 100.0)
    assert sum(point["exp_histogram_positive_bucket_counts"]) == 3
