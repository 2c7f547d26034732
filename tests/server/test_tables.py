"""User data: Parquet files and pyarrow Tables, checked against Logfire's schema."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logfire_io.schema import RECORDS_SCHEMA
from logfire_io.server import LocalLogfire
from logfire_io.server.tables import conform
from tests.helpers import make_records

T = datetime(2026, 2, 1, tzinfo=UTC)


def test_missing_nullable_columns_are_filled() -> None:
    table = conform(make_records([T, T]), RECORDS_SCHEMA, "records")
    assert table.schema == RECORDS_SCHEMA
    assert table.column("attributes").null_count == 2


def test_error_names_every_offending_column() -> None:
    bad = make_records([T]).drop_columns(["trace_id"]).append_column("surprise", pa.array([1]))
    bad = bad.set_column(bad.schema.get_field_index("level"), "level", pa.array(["nine"]))
    with pytest.raises(ValueError, match="records table does not fit") as caught:
        conform(bad, RECORDS_SCHEMA, "records")
    message = str(caught.value)
    assert "'trace_id'" in message
    assert "'surprise'" in message
    assert "'level' is string, expected int32" in message


def test_naive_timestamps_are_refused() -> None:
    table = make_records([T]).set_column(0, "start_timestamp", pa.array([T.replace(tzinfo=None)], pa.timestamp("us")))
    with pytest.raises(ValueError, match="without a time zone"):
        conform(table, RECORDS_SCHEMA, "records")


def test_safe_casts_are_applied() -> None:
    table = make_records([T]).set_column(0, "start_timestamp", pa.array([T], pa.timestamp("ns", "UTC")))
    table = table.set_column(table.schema.get_field_index("level"), "level", pa.array([13], pa.int64()))
    assert conform(table, RECORDS_SCHEMA, "records").column("level").type == pa.int32()


def test_serves_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(make_records([T, T], message=["hello", "world"]), path)
    with LocalLogfire(records=path, workers=1) as srv:
        response = httpx.post(
            f"{srv.base_url}/v2/query",
            json={"sql": "SELECT message FROM records ORDER BY message", "min_timestamp": "2020-01-01T00:00:00Z"},
            headers={"authorization": srv.read_token},
        )
    assert response.json()["data"] == [{"message": "hello"}, {"message": "world"}]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        LocalLogfire(records=tmp_path / "nope.parquet")
