"""Slices are converted as they land, and the responses they were decoded from are released at once."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import logfire_io
from logfire_io import LogfireQueryClient
from logfire_io._landing import land, owned
from logfire_io._read import ReadRequest, iter_tables
from logfire_io.server import LocalLogfire
from tests.conftest import DEMO_ROWS

SQL = "SELECT start_timestamp, level, duration, span_name, attributes FROM records_all"


class RecordingClient(LogfireQueryClient):
    """A real client that remembers each answer by weak reference, and the memory its buffers lie in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: list[weakref.ref[pa.Table]] = []
        self.spans: list[tuple[int, int]] = []

    def query_arrow(self, *args: Any, **kwargs: Any) -> pa.Table:
        table = super().query_arrow(*args, **kwargs)
        self.answers.append(weakref.ref(table))
        self.spans.extend(_spans(table))
        return table

    def inside_an_answer(self, address: int) -> bool:
        return any(start <= address < end for start, end in self.spans)


def _spans(table: pa.Table) -> list[tuple[int, int]]:
    buffers = [b for column in table.columns for chunk in column.chunks for b in chunk.buffers() if b is not None]
    return [(b.address, b.address + b.size) for b in buffers if b.size]


def _client(server: LocalLogfire) -> RecordingClient:
    return RecordingClient(server.read_token, base_url=server.base_url)


def test_a_landed_slice_is_released_before_the_next_is_converted(server: LocalLogfire) -> None:
    alive: list[int] = []

    def convert(table: pa.Table) -> int:
        alive.append(sum(answer() is not None for answer in client.answers))
        return table.num_rows

    request = ReadRequest(SQL, slices=8, max_concurrency=1, progress=False)
    with _client(server) as client:
        landed = land(iter_tables(client, request, owns_client=False), None, convert)
    assert sum(landed.parts) == DEMO_ROWS
    assert len(client.answers) >= 9  # the window's bounds, then 8 slices
    assert max(alive) <= 2, alive  # the slice being converted, and the one fetched meanwhile
    assert all(answer() is None for answer in client.answers)


@pytest.mark.parametrize("json_columns", [None, "auto"])
def test_a_polars_frame_points_into_no_response(server: LocalLogfire, json_columns: Any) -> None:
    with _client(server) as client:
        frame = logfire_io.read_logfire(SQL, client=client, slices=5, json_columns=json_columns, progress=False)
        assert frame.height == DEMO_ROWS
        assert max(series.n_chunks() for series in frame.get_columns()) >= 5  # not one copy made at the end
        shared = frame.to_arrow()  # without copying: each chunk's buffers are polars' own
        assert not any(client.inside_an_answer(start) for start, _ in _spans(shared))
    assert all(answer() is None for answer in client.answers)


def test_a_pandas_frame_points_into_no_response(server: LocalLogfire) -> None:
    pytest.importorskip("pandas")
    with _client(server) as client:
        frame = logfire_io.read_logfire_pandas(SQL, client=client, slices=5, json_columns=None, progress=False)
        assert len(frame) == DEMO_ROWS
        for name in frame.columns:
            values = frame[name].array
            if hasattr(values, "__arrow_array__"):  # pandas' Arrow-backed strings share Arrow buffers
                starts = [start for start, _ in _spans(pa.table({name: values.__arrow_array__()}))]
            else:
                starts = [np.asarray(values).__array_interface__["data"][0]]
            assert not any(client.inside_an_answer(start) for start in starts), name
    assert all(answer() is None for answer in client.answers)


def test_an_owned_copy_is_equal_and_shares_no_buffer(server: LocalLogfire) -> None:
    with _client(server) as client:
        table = client.query_arrow(SQL, limit=100)
        copy = owned(table)
        assert copy.equals(table)
        assert not any(client.inside_an_answer(start) for start, _ in _spans(copy))
