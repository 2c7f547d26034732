"""Incremental Arrow IPC decoding: any chunking gives the same batches; a cut stream is detected."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io._ipc import ArrowStreamDecoder, IncompleteStream, InvalidStream
from logfire_io.server.synth import synth_records

TABLE = synth_records(3_000, seed=5)


def _stream(table: pa.Table, chunk_rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=chunk_rows)
    return sink.getvalue().to_pybytes()


@settings(max_examples=60, deadline=None)
@given(chunk_rows=st.integers(1, 3_000), cuts=st.lists(st.integers(1, 200_000), max_size=40))
def test_any_chunking_decodes_the_same(chunk_rows: int, cuts: list[int]) -> None:
    body = _stream(TABLE.slice(0, 1_000), chunk_rows)
    decoder = ArrowStreamDecoder()
    batches, position = [], 0
    for size in [*cuts, len(body)]:
        batches += decoder.feed(body[position : position + size])
        position += size
    decoder.finish()
    assert pa.Table.from_batches(batches, decoder.schema).equals(TABLE.slice(0, 1_000))
    assert decoder.batches_decoded == len(batches)


@given(cut=st.integers(0, 7))
def test_missing_end_marker_is_detected(cut: int) -> None:
    body = _stream(TABLE.slice(0, 10), 10)
    decoder = ArrowStreamDecoder()
    decoder.feed(body[: len(body) - 8 + cut])
    with pytest.raises(IncompleteStream, match="without its end-of-stream marker"):
        decoder.finish()


def test_batches_share_the_message_buffers() -> None:
    body = _stream(TABLE, 3_000)
    decoder = ArrowStreamDecoder()
    before = pa.total_allocated_bytes()
    (batch,) = decoder.feed(body)
    assert pa.total_allocated_bytes() - before < batch.nbytes / 100  # the batch points into the message bytes


def test_not_arrow_is_refused() -> None:
    with pytest.raises(ValueError, match="not an Arrow IPC stream"):
        ArrowStreamDecoder().feed(b"<!doctype html><html>")


@settings(max_examples=40, deadline=None)
@given(
    junk=st.binary(min_size=1, max_size=64),
    cuts=st.lists(st.integers(1, 40_000), max_size=12),
)
def test_13_bytes_after_end_of_stream_are_refused_however_chunked(junk: bytes, cuts: list[int]) -> None:
    body = _stream(TABLE.slice(0, 100), 30) + junk
    decoder = ArrowStreamDecoder()
    position = 0
    with pytest.raises(InvalidStream, match="follow the Arrow end-of-stream marker"):
        for size in [*cuts, len(body)]:
            decoder.feed(body[position : position + size])
            position += size


def test_13_batches_are_validated_in_full() -> None:
    """pyarrow's IPC reader accepts these; reading them unvalidated can crash the interpreter."""
    sink = pa.BufferOutputStream()
    table = pa.table({"s": ["abc", "defghijk"]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    offsets = body.replace(struct.pack("<3i", 0, 3, 11), struct.pack("<3i", 0, 3, 1_000_000))
    utf8 = body.replace(b"defghijk", b"de\xff\xfeghij")
    assert offsets != body
    assert utf8 != body
    for corrupt, problem in ((offsets, "out of bounds"), (utf8, "Invalid UTF8")):
        with pytest.raises(InvalidStream, match=f"invalid Arrow data in message 1: .*{problem}"):
            ArrowStreamDecoder().feed(corrupt)


@pytest.mark.parametrize("length", [-8, 2**62])
def test_13_absurd_body_lengths(length: int) -> None:
    body = _stream(TABLE.slice(0, 3), 3)
    schema_end = 8 + struct.unpack_from("<i", body, 4)[0]
    batch = pa.ipc.read_message(pa.py_buffer(body[schema_end:]))
    header = body[schema_end : schema_end + 8 + struct.unpack_from("<i", body, schema_end + 4)[0]]
    patched = header.replace(struct.pack("<q", batch.body.size), struct.pack("<q", length))
    assert patched != header
    decoder = ArrowStreamDecoder()
    if length < 0:
        with pytest.raises(InvalidStream, match="negative body length"):
            decoder.feed(body[:schema_end] + patched)
    else:  # waits for a body that never comes: the stream is incomplete, never a giant allocation
        assert decoder.feed(body[:schema_end] + patched + b"\x00" * 64) == []
        with pytest.raises(IncompleteStream):
            decoder.finish()


def _one_table_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda body: body.replace(b"abcd", b"ab\xb0d"),  # a column name that is not UTF-8
        lambda body: body.replace(b"wxyz", b"wx\xb0z"),  # a nested field name that is not UTF-8
        lambda body: b"\xff\xff\xff\xff\x08\x00\x00\x00" + b"\x00" * 8,  # flatbuffers pyarrow reports as OSError
        lambda body: body.replace(b"Europe/Paris", b"Europe/Par\xb0s"),  # polars panics on it, pandas raises
    ],
    ids=["name", "nested name", "flatbuffers", "time zone"],
)
def test_13_corrupt_streams_are_refused_as_invalid(corrupt: Callable[[bytes], bytes]) -> None:
    table = pa.table(
        {
            "abcd": [1, 2],
            "s": [{"wxyz": 1}, {"wxyz": 2}],
            "t": pa.array([{"at": 1}, {"at": 2}], pa.struct([("at", pa.timestamp("us", "Europe/Paris"))])),
        }
    )
    decoder = ArrowStreamDecoder()
    with pytest.raises(InvalidStream):
        decoder.feed(corrupt(_one_table_stream(table)))


def test_16_a_stream_that_does_not_start_with_its_schema_is_refused() -> None:
    """pyarrow's ``read_schema`` reads any message's header as a schema: garbage, and now and then a segfault.

    Found by mutating bytes of a stream's schema message (a changed header type); here, a stream that starts
    with a record batch.
    """
    body = _one_table_stream(pa.table({"s": ["abc", "de"]}))
    (schema_length,) = struct.unpack_from("<i", body, 4)
    with pytest.raises(InvalidStream, match="starts with a 'record batch' message, not its schema"):
        ArrowStreamDecoder().feed(body[8 + schema_length :])


def test_16_a_stream_without_a_schema_is_refused() -> None:
    """Only the end-of-stream marker: pyarrow's ``Table.from_batches`` raised a raw ValueError on it."""
    with pytest.raises(InvalidStream, match="ended before its schema"):
        ArrowStreamDecoder().feed(b"\xff\xff\xff\xff\x00\x00\x00\x00")


def test_13_more_rows_than_asked_for_is_an_invalid_stream() -> None:
    body = _one_table_stream(pa.table({"x": list(range(10))}))
    with pytest.raises(InvalidStream, match="more rows than the 5 asked for"):
        ArrowStreamDecoder(max_rows=5).feed(body)
    assert sum(b.num_rows for b in ArrowStreamDecoder(max_rows=10).feed(body)) == 10


def test_16_batches_are_read_in_place_not_copied() -> None:
    """A message that arrived in one chunk is decoded where it lies: the batch's buffers point into the chunk.

    The decoder used to slice each message (and the rest) off the received bytes: two copies of every byte.
    """
    chunk = _stream(synth_records(2_000, seed=3).select(["span_name", "attributes"]), 500)
    decoder = ArrowStreamDecoder()
    batches = decoder.feed(chunk)
    decoder.finish()
    start = pa.py_buffer(chunk).address
    data = [b.column(0).buffers()[2] for b in batches]
    assert len(batches) == 4
    assert all(start <= buffer.address < start + len(chunk) for buffer in data)
