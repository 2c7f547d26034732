"""How the query engine lays ingested segments out for DataFusion: partitions of equal rows, whatever the segments."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from datafusion import SessionContext
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io.server.engine import Engine, QuerySpec, balanced
from logfire_io.server.store import Store
from tests.server.test_ingest_store import SCHEMAS, _batch


@settings(max_examples=200)
@given(sizes=st.lists(st.integers(0, 50), max_size=12), count=st.integers(1, 4))
def test_balanced_keeps_every_row_in_order_in_equal_partitions(sizes: list[int], count: int) -> None:
    batches, start = [], 0
    for size in sizes:
        batches.append(pa.record_batch({"n": pa.array(range(start, start + size), pa.int64())}))
        start += size
    partitions = balanced(batches, count)
    assert [v for p in partitions for b in p for v in b.column(0).to_pylist()] == list(range(start))
    share = -(-start // count)
    rows = [sum(b.num_rows for b in partition) for partition in partitions]
    assert rows == [share] * (start // share) + ([start % share] if start % share else []) if start else rows == []


def test_15_uneven_segments_are_scanned_in_partitions_of_equal_rows(tmp_path: Path) -> None:
    """Regression: partitions were cut by batch count, so a large merged segment next to a few small fresh ones
    gave one core nearly all the rows (aggregates on 1,000,000 ingested rows took 1.65x the loaded time)."""
    store = Store(tmp_path, SCHEMAS)
    try:
        sizes = [6000, 40, 40, 300, 7]
        start = 0
        for size in sizes:
            store.append("records_all", _batch(start, list(range(start, start + size))))
            start += size
        engine = Engine({"records_all": store.directory("records_all")}, memory_limit=2**30)
        frame, _ = engine.plan(QuerySpec(sql="SELECT span_id FROM records_all", limit=10**6))
        scan = frame.execution_plan()
        while scan.children():  # down to the table's scan, whose partitions are the registered ones
            scan = scan.children()[0]
        ctx = SessionContext()
        rows = [sum(b.to_pyarrow().num_rows for b in ctx.execute(scan, i)) for i in range(scan.partition_count)]
        assert sum(rows) == sum(sizes)
        assert rows == [3194, 3193]  # 6387 rows: half each, the large segment sliced, not one per core by batches
    finally:
        store.close()


def test_a_store_without_rows_answers_queries(tmp_path: Path) -> None:
    store = Store(tmp_path, SCHEMAS)
    try:
        engine = Engine({"records_all": store.directory("records_all")}, memory_limit=2**30)
        frame, _ = engine.plan(QuerySpec(sql="SELECT count(*) AS n FROM records", limit=10))
        assert pa.Table.from_batches(list(engine.batches(frame))).column("n").to_pylist() == [0]
    finally:
        store.close()
