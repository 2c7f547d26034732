"""The durable segment store: appends, compaction and crash recovery keep every row exactly once, sorted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io.schema import RECORDS_SCHEMA
from logfire_io.server.store import Store, live_segments, read_segment
from logfire_io.server.tables import conform
from tests.helpers import make_records

SCHEMAS = {"records_all": RECORDS_SCHEMA}


def _batch(first_id: int, times_us: list[int]) -> pa.Table:
    from datetime import UTC, datetime

    stamps = [datetime.fromtimestamp(t / 1e6, UTC) for t in times_us]
    table = make_records(stamps)
    ids = pa.array([f"{first_id + i:016x}" for i in range(len(times_us))], pa.string())
    table = table.set_column(table.schema.get_field_index("span_id"), "span_id", ids)
    return conform(table, RECORDS_SCHEMA, "records")


def _served(directory: Path) -> pa.Table:
    """What a query worker would read: the live segments, each of which must be sorted by time."""
    pieces = [read_segment(p) for p in live_segments(directory)]
    for piece in pieces:
        times = piece.column("start_timestamp").cast(pa.int64()).to_numpy()
        assert (np.diff(times) >= 0).all()
    return pa.concat_tables(pieces) if pieces else RECORDS_SCHEMA.empty_table()


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 10**9), min_size=1, max_size=300), min_size=1, max_size=40))
def test_appends_and_compaction_keep_every_row_exactly_once(tmp_path_factory: pytest.TempPathFactory, batches) -> None:
    root = tmp_path_factory.mktemp("store")
    store = Store(root, SCHEMAS)
    expected: list[str] = []
    try:
        for times in batches:
            store.append("records_all", _batch(len(expected), times))
            expected += [f"{len(expected) + i:016x}" for i in range(len(times))]
        store.compact()
        served = _served(store.directory("records_all"))
        assert sorted(served.column("span_id").to_pylist()) == sorted(expected)
        assert store.num_rows("records_all") == len(expected)
        assert store.segment_count("records_all") <= 7 * 2  # fewer than 8 per size tier, not one per batch
    finally:
        store.close()
    reopened = Store(root, SCHEMAS)  # and the same rows come back after a restart
    try:
        assert sorted(_served(reopened.directory("records_all")).column("span_id").to_pylist()) == sorted(expected)
    finally:
        reopened.close()


def test_15_half_written_and_damaged_segments_are_not_served(tmp_path: Path) -> None:
    store = Store(tmp_path, SCHEMAS)
    store.append("records_all", _batch(0, [1, 2, 3]))
    store.close()
    directory = tmp_path / "records_all"
    (good,) = directory.glob("seg-*.arrow")
    # A crash mid-write leaves a .tmp file; a torn segment under a final name must not be read either.
    (directory / "seg-0000000000000007-0000000000000007.arrow.tmp").write_bytes(good.read_bytes()[:100])
    torn = directory / "seg-0000000000000009-0000000000000009.arrow"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    reopened = Store(tmp_path, SCHEMAS)
    try:
        assert not list(directory.glob("*.tmp"))
        assert (directory / (torn.name + ".corrupt")).exists()
        assert _served(directory).column("span_id").to_pylist() == [f"{i:016x}" for i in range(3)]
        reopened.append("records_all", _batch(3, [4]))  # numbering continues past what was on disk
        assert reopened.num_rows("records_all") == 4
    finally:
        reopened.close()


def test_15_crash_between_merge_and_cleanup_serves_each_row_once(tmp_path: Path) -> None:
    store = Store(tmp_path, SCHEMAS)
    for start in range(8):  # one full run of one size tier: compaction merges it into one segment
        store.append("records_all", _batch(start, [10 - start]))
    directory = tmp_path / "records_all"
    pieces = sorted(directory.glob("seg-*.arrow"))
    saved = tmp_path / "saved"
    saved.mkdir()
    for piece in pieces:
        shutil.copy(piece, saved / piece.name)
    store.compact()
    store.close()
    for piece in saved.iterdir():  # the merged file landed, but the pieces were not deleted yet
        shutil.copy(piece, directory / piece.name)
    assert len(live_segments(directory)) == 1
    assert sorted(_served(directory).column("span_id").to_pylist()) == [f"{i:016x}" for i in range(8)]
    Store(tmp_path, SCHEMAS).close()
    assert len(list(directory.glob("seg-*.arrow"))) == 1  # the covered pieces are deleted at start


def test_a_directory_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not ours")
    with pytest.raises(ValueError, match="not a logfire-io store"):
        Store(tmp_path, SCHEMAS)


def test_15_concurrent_appends_while_compacting_keep_every_row_once(tmp_path: Path) -> None:
    """Regression: a merge raced an explicit compact() (same tmp name) and could cover a batch still being written."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store(tmp_path, SCHEMAS)
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(store.append, "records_all", _batch(i * 10, [i] * 10)) for i in range(60)]
            for _ in range(5):
                store.compact()
            for future in futures:
                future.result()
        store.compact()
        ids = _served(store.directory("records_all")).column("span_id").to_pylist()
        assert sorted(ids) == [f"{i:016x}" for i in range(600)]
    finally:
        store.close()


def test_15_merged_segments_hold_few_large_batches(tmp_path: Path) -> None:
    """Regression: merged segments kept one record batch per merged piece, and queries over the hundreds of tiny
    batches ran several times slower than over the same rows loaded from one file."""
    store = Store(tmp_path, SCHEMAS)
    try:
        for start in range(64):  # batches in time order: the merged rows are already sorted, nothing re-chunks them
            store.append("records_all", _batch(start * 50, list(range(start * 50, start * 50 + 50))))
        store.compact()
        for path in live_segments(store.directory("records_all")):
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
            rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            assert reader.num_record_batches <= rows // 65_536 + 1, path.name
    finally:
        store.close()


def test_15_local_logfire_serves_its_data_dir_again(tmp_path: Path) -> None:
    """Loaded and ingested rows both come back after a restart; no synthetic rows are added to a store."""
    import httpx

    from logfire_io.server import LocalLogfire
    from tests.server.otlp import SpanSpec, post, query, trace_request

    loaded = _batch(0, [1_000_000, 2_000_000])
    span = SpanSpec(trace_id=b"\x07" * 16, span_id=b"\x08" * 8, name="ingested", start_ns=3_000_000_000)
    with LocalLogfire(records=loaded, data_dir=tmp_path, workers=1) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert post(c, "/v1/traces", trace_request([span]).SerializeToString(), srv.write_token).status_code == 200
    with LocalLogfire(data_dir=tmp_path, workers=1) as srv, httpx.Client(base_url=srv.base_url) as c:
        rows = query(c, srv.read_token, "SELECT span_name FROM records ORDER BY start_timestamp")
        assert [r["span_name"] for r in rows] == ["row {i}", "row {i}", "ingested"]
        assert srv.num_records == 3
