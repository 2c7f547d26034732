"""The query clients against the local server: every method x protocol x sync/async, same as the official SDK."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import anyio
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from logfire.query_client import LogfireQueryClient as OfficialClient

from logfire_io import AsyncLogfireQueryClient, LogfireQueryClient
from logfire_io.server import LocalLogfire

SQL = (
    "SELECT start_timestamp, span_id, kind, level, message, tags, is_exception, duration, attributes "
    "FROM records ORDER BY start_timestamp, span_id"
)
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
METHODS = ["query_json", "query_json_rows", "query_arrow", "query_csv", "iter_arrow_batches"]


def _call_sync(server: LocalLogfire, method: str, version: str, **kwargs: object) -> object:
    with LogfireQueryClient(server.read_token, base_url=server.base_url, api_version=version) as client:  # type: ignore[arg-type]
        result = getattr(client, method)(SQL, min_timestamp=SINCE, limit=300, **kwargs)
        return pa.Table.from_batches(list(result)) if method == "iter_arrow_batches" else result


def _call_async(server: LocalLogfire, method: str, version: str) -> object:
    async def run() -> object:
        async with AsyncLogfireQueryClient(server.read_token, base_url=server.base_url, api_version=version) as client:  # type: ignore[arg-type]
            if method == "iter_arrow_batches":
                return pa.Table.from_batches(
                    [b async for b in client.iter_arrow_batches(SQL, min_timestamp=SINCE, limit=300)]
                )
            return await getattr(client, method)(SQL, min_timestamp=SINCE, limit=300)

    return anyio.run(run)


@pytest.fixture(scope="module")
def official(server: LocalLogfire) -> Iterator[dict[str, object]]:
    with OfficialClient(server.read_token, base_url=server.base_url) as client:
        rows = client.query_json_rows(SQL, min_timestamp=SINCE, limit=300)
        yield {
            "query_json_rows": rows,
            "query_arrow": client.query_arrow(SQL, min_timestamp=SINCE, limit=300),
            "query_csv": client.query_csv(SQL, min_timestamp=SINCE, limit=300),
        }


def _expected(official: dict[str, object], method: str) -> object:
    rows = official["query_json_rows"]
    if method == "query_json":
        return {"columns": [c | {"values": [r[c["name"]] for r in rows["rows"]]} for c in rows["columns"]]}  # type: ignore[index]
    if method == "iter_arrow_batches":
        return official["query_arrow"]
    return official[method]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("method", METHODS)
def test_method_matrix_equals_official_sdk(
    server: LocalLogfire, official: dict[str, object], method: str, version: str, mode: str
) -> None:
    ours = _call_sync(server, method, version) if mode == "sync" else _call_async(server, method, version)
    expected = _expected(official, method)
    if isinstance(expected, pa.Table):
        assert isinstance(ours, pa.Table)
        assert ours.equals(expected)
    else:
        assert ours == expected
    if method == "query_csv":
        assert pa_csv.read_csv(io.BytesIO(ours.encode())).num_rows == 300  # type: ignore[union-attr]


def test_iter_arrow_batches_streams_several_batches(server: LocalLogfire) -> None:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        batches = list(client.iter_arrow_batches("SELECT * FROM records", min_timestamp=SINCE, limit=10_000))
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 10_000


def test_first_batch_arrives_before_body_ends(server: LocalLogfire) -> None:
    import time

    server.faults.push("slow")  # the body trickles out over ~1 s
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        started = time.monotonic()
        stream = client.iter_arrow_batches("SELECT * FROM records", min_timestamp=SINCE, limit=10_000)
        next(stream)
        first = time.monotonic() - started
        rest = sum(b.num_rows for b in stream)
        total = time.monotonic() - started
    assert rest > 0
    assert first < total * 0.95  # a buffered read would yield its first batch only at the very end


def test_timezone_and_environment_pass_through(server: LocalLogfire) -> None:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        rows = client.query_json_rows(
            "SELECT DISTINCT deployment_environment AS e, now() AS n FROM records",
            min_timestamp=SINCE,
            environment=["staging"],
            timezone="Asia/Tokyo",
        )
    assert {r["e"] for r in rows["rows"]} == {"staging"}
    assert rows["columns"][1]["datatype"] == {"Timestamp": ["Nanosecond", "Asia/Tokyo"]}


def test_empty_result_keeps_schema(server: LocalLogfire) -> None:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        table = client.query_arrow("SELECT span_id, level FROM records WHERE false", min_timestamp=SINCE)
        csv = client.query_csv("SELECT span_id, level FROM records WHERE false", min_timestamp=SINCE)
    assert table.num_rows == 0
    assert table.schema.names == ["span_id", "level"]
    assert csv == "span_id,level\n"


def test_falls_back_to_v1_once_and_remembers() -> None:
    with LocalLogfire(demo_rows=500, workers=1, api_versions={"v1"}) as srv:
        with LogfireQueryClient(srv.read_token, base_url=srv.base_url) as client:
            assert client.protocol == "v2"
            first = client.query_arrow("SELECT count(*) AS n FROM records_all")
            second = client.query_json_rows("SELECT count(*) AS n FROM records_all")
            assert client.protocol == "v1"
        assert first.column("n").to_pylist() == [500]
        assert second["rows"] == [{"n": 500}]
        assert [q.endpoint for q in srv.queries] == ["v1", "v1"]  # v2 was tried once, answered 404, not logged


@pytest.mark.parametrize("first", ["query_json", "query_json_rows"])
def test_json_shapes_survive_the_fallback(first: str) -> None:
    """The JSON shape is chosen when each request is built, so the switch to v1 mid-call cannot mix them up."""
    with LocalLogfire(demo_rows=50, workers=1, api_versions={"v1"}) as srv:
        with LogfireQueryClient(srv.read_token, base_url=srv.base_url) as client:
            result = getattr(client, first)("SELECT count(*) AS n FROM records_all")
            columns = client.query_json("SELECT count(*) AS n FROM records_all")
    assert result == (columns if first == "query_json" else {"columns": result["columns"], "rows": [{"n": 50}]})
    assert columns["columns"][0]["values"] == [50]


def test_pinned_v2_does_not_fall_back() -> None:
    from logfire_io import UnexpectedResponseError

    with LocalLogfire(demo_rows=10, workers=1, api_versions={"v1"}) as srv:
        with LogfireQueryClient(srv.read_token, base_url=srv.base_url, api_version="v2") as client:
            with pytest.raises(UnexpectedResponseError, match="HTTP 404"):
                client.query_arrow("SELECT 1")
