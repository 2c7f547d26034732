"""The official `logfire` SDK's query clients work against the local server unchanged."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow.csv as pa_csv
import pytest
from logfire.db_api import connect
from logfire.query_client import AsyncLogfireQueryClient, LogfireQueryClient, QueryExecutionError

from logfire_io.server import LocalLogfire

SQL = (
    "SELECT kind, message, is_exception, tags, start_timestamp, attributes FROM records "
    "ORDER BY start_timestamp, span_id LIMIT 20"
)
SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def test_sync_client(server: LocalLogfire) -> None:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        rows = client.query_json_rows(SQL, min_timestamp=SINCE)
        table = client.query_arrow(SQL, min_timestamp=SINCE)
        text = client.query_csv(SQL, min_timestamp=SINCE)
        info = client.info()
    assert [c["name"] for c in rows["columns"]] == table.column_names
    assert rows["columns"][3] == {
        "name": "tags",
        "datatype": {"List": {"name": "item", "datatype": "Utf8", "nullable": True}},
        "nullable": True,
    }
    assert len(rows["rows"]) == table.num_rows == 20
    assert [r["message"] for r in rows["rows"]] == table.column("message").to_pylist()
    assert isinstance(rows["rows"][0]["attributes"], dict)  # JSON columns are nested in JSON bodies
    assert isinstance(table.column("attributes")[0].as_py(), str)  # and text in Arrow
    csv_table = pa_csv.read_csv(io.BytesIO(text.encode()))
    assert csv_table.column("message").to_pylist() == table.column("message").to_pylist()
    assert info == {"organization_name": "local", "project_name": "logfire-io-local"}


def test_sync_client_errors(server: LocalLogfire) -> None:
    with (
        LogfireQueryClient(server.read_token, base_url=server.base_url) as client,
        pytest.raises(QueryExecutionError) as caught,
    ):
        client.query_json_rows("SELECT nope FROM records", min_timestamp=SINCE)
    assert "nope" in caught.value.args[0]["detail"]


async def _async_results(server: LocalLogfire) -> tuple:
    async with AsyncLogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        return (
            await client.query_json_rows(SQL, min_timestamp=SINCE),
            await client.query_arrow(SQL, min_timestamp=SINCE),
            await client.query_csv(SQL, min_timestamp=SINCE),
            await client.info(),
        )


def test_async_client(server: LocalLogfire) -> None:
    import anyio

    rows, table, text, info = anyio.run(_async_results, server)
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        assert table.equals(client.query_arrow(SQL, min_timestamp=SINCE))
        assert text == client.query_csv(SQL, min_timestamp=SINCE)
        assert rows == client.query_json_rows(SQL, min_timestamp=SINCE)
    assert info["project_name"] == "logfire-io-local"


def test_db_api(server: LocalLogfire) -> None:
    with connect(server.read_token, base_url=server.base_url, min_timestamp=SINCE, limit=5_000) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT span_name, level FROM records WHERE level = %(level)s ORDER BY span_id", {"level": 17})
        rows = cursor.fetchall()
    assert 0 < len(rows) < 5_000
    assert all(level == 17 for _, level in rows)
    assert [d[0] for d in cursor.description] == ["span_name", "level"]
