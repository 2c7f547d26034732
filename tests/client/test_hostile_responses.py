"""Issue 13: no response can crash, flood or fool the client.

Each test scripts a hostile answer on a real loopback server and checks that the client refuses it with an
``UnexpectedResponseError`` (or a ``TransportError`` for time) that names the request, within bounded memory and
time, without retrying what retrying cannot fix.
"""

from __future__ import annotations

import gzip
import itertools
import re
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import anyio
import pyarrow as pa
import pytest

import logfire_io
from logfire_io import (
    AsyncLogfireQueryClient,
    IncompleteResponseError,
    LogfireQueryClient,
    Retry,
    TransportError,
    UnexpectedResponseError,
)
from logfire_io.server import LocalLogfire
from tests.client.conftest import Answer, Hostile

TOKEN = "pylf_v1_local_h0stileTestToken"
JSON = {"content-type": "application/json"}


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


VALID = _stream(pa.table({"s": ["abc", "defghijk"]}))
CORRUPT = {
    # the second string's end offset points a megabyte past the 11-byte data buffer
    "offsets past the data": VALID.replace(struct.pack("<3i", 0, 3, 11), struct.pack("<3i", 0, 3, 1_000_000)),
    "invalid UTF-8": VALID.replace(b"defghijk", b"de\xff\xfeghij"),
}


def _client(hostile: Hostile, **kwargs: Any) -> LogfireQueryClient:
    return LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=Retry(retries=2, backoff=0.01), **kwargs)


def _read(method: str, hostile: Hostile, **kwargs: Any) -> object:
    """Read ``SELECT s FROM records`` with one of the public entry points."""
    sql = "SELECT s FROM records"
    if method == "read_logfire":
        return logfire_io.read_logfire(sql, read_token=TOKEN, base_url=hostile.base_url, json_columns=None, limit=5)
    if method == "async query_arrow":

        async def run() -> pa.Table:
            async with AsyncLogfireQueryClient(TOKEN, base_url=hostile.base_url, **kwargs) as client:
                return await client.query_arrow(sql)

        return anyio.run(run)
    with _client(hostile, **kwargs) as client:
        if method == "iter_arrow_batches":
            return list(client.iter_arrow_batches(sql))
        return getattr(client, method)(sql)


METHODS = ["query_arrow", "iter_arrow_batches", "async query_arrow", "read_logfire"]


def test_13_valid_body_is_read(hostile: Hostile) -> None:
    """The control for the corrupt bodies below: the same bytes, unaltered, are read."""
    hostile.serve(Answer(VALID))
    for method in METHODS:
        result = _read(method, hostile)
        rows = sum(len(b) for b in result) if isinstance(result, list) else len(result)  # type: ignore[arg-type]
        assert rows == 2


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("corruption", list(CORRUPT))
def test_13_corrupt_arrow_is_refused_not_a_crash(hostile: Hostile, method: str, corruption: str) -> None:
    hostile.serve(Answer(CORRUPT[corruption]))
    with pytest.raises(UnexpectedResponseError, match=r"POST http://127\.0\.0\.1:\d+/v2/query was refused") as caught:
        _read(method, hostile)
    assert "invalid Arrow data" in str(caught.value)
    assert "Hint:" in str(caught.value)
    assert len(hostile.requests) == 1  # corrupt data is not retried: it would come back the same


@pytest.mark.parametrize("pieces", [1, 2, 3], ids=["one chunk", "junk in its own chunk", "junk split"])
@pytest.mark.parametrize("junk", [b"\x00", b"\x00" * 8, b"<html>"])
def test_13_bytes_after_end_of_stream_are_refused(hostile: Hostile, pieces: int, junk: bytes) -> None:
    body = VALID + junk
    cuts = {1: [len(body)], 2: [len(VALID), len(body)], 3: [len(VALID) - 3, len(VALID) + 1, len(body)]}[pieces]
    parts = [body[a:b] for a, b in itertools.pairwise([0, *cuts])]
    hostile.serve(Answer(lambda: parts))
    with _client(hostile) as client, pytest.raises(UnexpectedResponseError, match="follow the Arrow end-of-stream"):
        client.query_arrow("SELECT 1")


def _zeros_gzip(megabytes: int, layers: int) -> bytes:
    """``megabytes`` MiB of zeros, gzipped ``layers`` times, built without holding the zeros in memory.

    Deflate after a full flush forgets its history, so every further MiB of zeros compresses to the same bytes.
    (The gzip trailer is for two MiB only: a reader that got that far would notice; ours must stop much earlier.)
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    unit = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = first + unit * (megabytes - 1) + compressor.flush()
    return body if layers == 1 else gzip.compress(body, 9)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("method", ["query_json_rows", "query_csv", "query_arrow"])
def test_13_decompression_bomb_is_refused_in_bounded_memory(hostile: Hostile, layers: int, method: str) -> None:
    body = _zeros_gzip(1024, layers)
    encoding = "gzip" if layers == 1 else "gzip, gzip"
    hostile.serve(Answer(body, headers={"content-type": "application/json", "content-encoding": encoding}))
    if method == "query_arrow":
        hostile.answers[0].headers["content-type"] = "application/vnd.apache.arrow.stream"
    tracemalloc.start()
    try:
        with _client(hostile) as client, pytest.raises(UnexpectedResponseError) as caught:
            getattr(client, method)("SELECT 1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"{peak / 2**20:.0f} MiB held for a {len(body):,}-byte body"
    if method != "query_arrow":  # zeros are no Arrow stream: that may be what stops it first
        assert "decompression bomb" in str(caught.value)
        assert "`max_compression_ratio=`" in str(caught.value)
    assert len(hostile.requests) == 1


def test_13_response_size_cap_is_configurable(server: LocalLogfire) -> None:
    sql = "SELECT * FROM records_all"
    with LogfireQueryClient(server.read_token, base_url=server.base_url, max_response_bytes=100_000) as client:
        with pytest.raises(UnexpectedResponseError, match=r"larger than the 100,000 bytes allowed(?s:.*)`max_resp"):
            client.query_arrow(sql, limit=2_000)
        with pytest.raises(UnexpectedResponseError, match="larger than the 100,000 bytes allowed"):
            list(client.iter_arrow_batches(sql, limit=2_000))
    with LogfireQueryClient(server.read_token, base_url=server.base_url, max_response_bytes=10**9) as client:
        assert client.query_arrow(sql, limit=2_000).num_rows == 2_000


def _compressed_stream(table: pa.Table, codec: str) -> bytes:
    """An IPC stream whose record batches use Arrow's own body compression (not an HTTP content-encoding)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_table(table, max_chunksize=1)
    return sink.getvalue().to_pybytes()


ZEROS = pa.table({"z": pa.array([bytes(4 << 20)] * 8, pa.binary())})  # 32 MiB of zeros in 8 rows


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("method", ["query_arrow", "iter_arrow_batches"])
def test_13_arrow_buffer_compression_counts_against_the_cap(hostile: Hostile, codec: str, method: str) -> None:
    body = _compressed_stream(ZEROS, codec)
    assert len(body) < 1 << 20  # far under the cap as sent; 32 times over it once inflated
    hostile.serve(Answer(body))
    with _client(hostile, max_response_bytes=4 << 20) as client:
        with pytest.raises(UnexpectedResponseError, match=r"inflate past the 4,194,304 bytes allowed(?s:.*)`max_resp"):
            result = getattr(client, method)("SELECT z FROM records")
            list(result) if method == "iter_arrow_batches" else result
    assert len(hostile.requests) == 1  # refused, not retried
    with _client(hostile, max_response_bytes=64 << 20) as client:  # the control: within the cap it is read
        assert client.query_arrow("SELECT z FROM records").num_rows == ZEROS.num_rows


def test_13_unoffered_content_encoding_is_refused(hostile: Hostile) -> None:
    hostile.serve(Answer(b"\x1b\x00", headers={"content-type": "application/json", "content-encoding": "br"}))
    with _client(hostile) as client, pytest.raises(UnexpectedResponseError, match="content-encoding br"):
        client.query_json_rows("SELECT 1")
    assert hostile.requests[0]["accept-encoding"] == "gzip, deflate"


def test_13_gzip_cut_short_is_incomplete_not_short(hostile: Hostile) -> None:
    text = b"x\n" + b"1\n" * 50_000
    hostile.serve(Answer(gzip.compress(text)[:-100], headers={"content-type": "text/csv", "content-encoding": "gzip"}))
    with _client(hostile) as client, pytest.raises(IncompleteResponseError, match="compressed body ended early"):
        client.query_csv("SELECT 1")
    assert len(hostile.requests) == 3  # a cut body may be a network accident: retried


@pytest.mark.parametrize(
    "body",
    [
        {"schema": None, "data": []},
        {"schema": {"fields": None}, "data": []},
        {"schema": {"fields": [{"name": "x"}]}, "data": None},
        {"schema": {"fields": [{"name": "x"}]}, "data": [1]},
        [],
    ],
)
@pytest.mark.parametrize("method", ["query_json", "query_json_rows"])
def test_13_v2_json_of_the_wrong_shape(hostile: Hostile, body: object, method: str) -> None:
    import orjson

    hostile.serve(Answer(orjson.dumps(body), headers=JSON))
    with _client(hostile) as client, pytest.raises(UnexpectedResponseError, match="not in the documented shape"):
        getattr(client, method)("SELECT 1")


V1_COLUMN = {"name": "x", "nullable": False, "datatype": "Int64"}


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("query_json", {"columns": [V1_COLUMN | {"values": [1, 2]}, {"name": "y", "values": [1]}]}),
        ("query_json", {"columns": [V1_COLUMN | {"values": "12"}]}),
        ("query_json", {"columns": [V1_COLUMN]}),
        ("query_json", {"columns": [{"name": 3, "values": []}]}),
        ("query_json", {"columns": {"x": [1]}}),
        ("query_json", [[1, 2]]),
        ("query_json_rows", {"columns": [V1_COLUMN], "rows": None}),
        ("query_json_rows", {"columns": [V1_COLUMN], "rows": [[1]]}),
        ("query_json_rows", {"columns": [None], "rows": []}),
        ("query_json_rows", {"rows": []}),
    ],
)
def test_13_v1_json_of_the_wrong_shape(hostile: Hostile, body: object, method: str) -> None:
    import orjson

    hostile.serve(Answer(orjson.dumps(body), headers=JSON))
    with _client(hostile, api_version="v1") as client, pytest.raises(UnexpectedResponseError) as caught:
        getattr(client, method)("SELECT 1")
    assert re.search(r"GET http://127\.0\.0\.1:\d+/v1/query was refused: the v1 JSON body is not in", str(caught.value))


@pytest.mark.parametrize("method", ["query_json", "query_json_rows"])
def test_13_v1_json_of_the_documented_shape_is_read(hostile: Hostile, method: str) -> None:
    """The control: the spec's v1 examples (tests/fixtures' shapes) are returned unchanged."""
    import orjson

    columns = {
        "columns": [
            V1_COLUMN | {"values": [1, 2]},
            {"name": "y", "nullable": True, "datatype": "Utf8", "values": ["a", None]},
        ]
    }
    rows = {"columns": [V1_COLUMN], "rows": [{"x": 1}, {"x": 2}]}
    body = columns if method == "query_json" else rows
    hostile.serve(Answer(orjson.dumps(body), headers=JSON))
    with _client(hostile, api_version="v1") as client:
        assert getattr(client, method)("SELECT 1") == body


def test_13_csv_that_is_not_utf8(hostile: Hostile) -> None:
    hostile.serve(Answer(b"x\n\xff\xfe\n", headers={"content-type": "text/csv; charset=utf-8"}))
    with _client(hostile) as client, pytest.raises(UnexpectedResponseError, match="not valid utf-8"):
        client.query_csv("SELECT 1")


def _timed(func: Callable[[], object]) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


@pytest.mark.parametrize("method", ["query_arrow", "iter_arrow_batches", "async query_arrow", "query_json_rows"])
def test_13_a_slow_drip_ends_at_the_deadline(hostile: Hostile, method: str) -> None:
    if method == "query_json_rows":  # JSON may hold any amount of white space
        hostile.serve(Answer(lambda: itertools.repeat(b" "), headers=JSON, pause=0.05))
    else:  # a valid Arrow stream, one byte every 50 ms
        hostile.serve(Answer(lambda: (VALID[i : i + 1] for i in range(len(VALID))), pause=0.05))

    def read() -> None:
        with pytest.raises(TransportError, match=r"took longer than the 1 s allowed(?s:.*)`timeout=`"):
            _read(method, hostile, timeout=1.0)

    assert _timed(read) < 2.5
    assert len(hostile.requests) == 1  # a request that ran out of time is not sent again


def test_13_deadline_does_not_count_the_callers_time(server: LocalLogfire) -> None:
    """A stream consumed slowly is not cut: only the time spent waiting for the network counts."""
    sql = "SELECT * FROM records_all ORDER BY span_id"  # a sort answers in batches of 8,192 rows
    with LogfireQueryClient(server.read_token, base_url=server.base_url, timeout=1.0) as client:
        batches = []
        for batch in client.iter_arrow_batches(sql, limit=10_000):
            time.sleep(0.8)
            batches.append(batch)
    assert sum(b.num_rows for b in batches) == 10_000
    assert len(batches) >= 2  # so the pauses add up past the deadline


def test_13_slow_fault_of_the_local_server(server: LocalLogfire) -> None:
    server.faults.push("slow")
    with LogfireQueryClient(server.read_token, base_url=server.base_url, timeout=0.3) as client:
        with pytest.raises(TransportError, match=r"took longer than the 0\.3 s allowed"):
            client.query_arrow("SELECT * FROM records_all", limit=5_000)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "10", True])
def test_13_bad_timeouts_are_configuration_errors(timeout: object) -> None:
    with pytest.raises(logfire_io.ConfigurationError, match="`timeout` must be a positive number"):
        LogfireQueryClient(TOKEN, base_url="http://127.0.0.1:9", timeout=timeout)  # type: ignore[arg-type]


def test_16_an_empty_arrow_stream_is_refused(hostile: Hostile) -> None:
    """The end-of-stream marker alone, no schema: a raw ValueError from pyarrow reached the caller."""
    hostile.serve(Answer(b"\xff\xff\xff\xff\x00\x00\x00\x00"))
    with _client(hostile) as client, pytest.raises(UnexpectedResponseError, match="ended before its schema"):
        client.query_arrow("SELECT 1")
