"""Incremental Arrow IPC decoding: any chunking gives the same batches; a cut stream is detected."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io._ipc import ArrowStreamDecoder, IncompleteStream
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
