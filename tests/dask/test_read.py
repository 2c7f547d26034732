"""logfire_io.dask.read_logfire on a real LocalCluster with worker processes, against LocalLogfire over loopback.

The oracle is the single-machine reader: computed, the Dask frame must equal ``read_logfire_pandas`` of the same
query and window (every row exactly once, the same dtypes), whatever the partitioning.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from distributed import Client, LocalCluster
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import logfire_io
import pandas as pd
import polars as pl
from logfire_io import ConfigurationError, LogfireQueryClient, RowCapError, Slice, SliceError
from logfire_io._read import ReadRequest, iter_tables
from logfire_io.dask import _limit, read_logfire
from logfire_io.server import LocalLogfire
from tests.helpers import make_records

BASE = datetime(2026, 3, 1, tzinfo=UTC)
END = BASE + timedelta(hours=1)
BURST = BASE + timedelta(minutes=30)
US = timedelta(microseconds=1)
SQL = "SELECT start_timestamp, span_id, level, attributes, message FROM records"


def _records() -> pa.Table:
    """~28,500 rows: uniform microseconds, then 3,000 rows on the microsecond BURST and 1,500 on the next one."""
    rng = np.random.default_rng(5)
    uniform = rng.integers(0, int((END - BASE) / US), 24_000)
    burst = np.concatenate([np.full(3_000, int((BURST - BASE) / US)), np.full(1_500, int((BURST - BASE) / US) + 1)])
    offsets = np.sort(np.concatenate([uniform, burst]))
    starts = [BASE + timedelta(microseconds=int(o)) for o in offsets]
    attributes = [json.dumps({"i": i, "odd": bool(i % 2)}) for i in range(len(starts))]
    return make_records(starts, level=rng.choice([5, 9, 17], len(starts)).tolist(), attributes=attributes)


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalLogfire]:
    with LocalLogfire(records=_records()) as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local,
        Client(local) as client,
    ):
        yield client


def _single(srv: LocalLogfire, sql: str, **kwargs: object) -> pd.DataFrame:
    kwargs = {"json_columns": None, "dtype_backend": "pyarrow", **kwargs}
    return logfire_io.read_logfire_pandas(sql, read_token=srv.read_token, base_url=srv.base_url, **kwargs)  # type: ignore[arg-type]


def _dask(srv: LocalLogfire, sql: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return read_logfire(sql, read_token=srv.read_token, base_url=srv.base_url, **kwargs)  # type: ignore[arg-type]


def _by_span(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("span_id", kind="stable").reset_index(drop=True)


edges = st.sampled_from([None, BASE, BURST, BURST + US, BURST + 2 * US, BASE + timedelta(minutes=12), END])


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=edges, high=edges, partition_rows=st.sampled_from([1_500, 6_000, 100_000]))
@example(low=None, high=BURST + US, partition_rows=1_500)  # the window ends inside the burst: BURST in, BURST+1us out
@example(low=BURST + US, high=None, partition_rows=1_500)  # and starts on its second microsecond
def test_equals_single_reader(
    srv: LocalLogfire, cluster: Client, low: datetime | None, high: datetime | None, partition_rows: int
) -> None:
    if low is not None and high is not None and low >= high:
        return
    window = {"min_timestamp": low, "max_timestamp": high}
    ddf = _dask(srv, SQL, partition_rows=partition_rows, time_index=False, **window)
    got = ddf.compute()
    want = _single(srv, SQL, **window)
    assert got["span_id"].is_unique
    pd.testing.assert_frame_equal(_by_span(got), _by_span(want))
    assert list(got.dtypes) == list(ddf.dtypes)
    if partition_rows == 1_500:  # below a slice's 9,000 rows: one slice per partition
        assert ddf.npartitions >= -(-len(want) // 9_000)


def test_sliced_read_is_indexed_by_time_in_order(srv: LocalLogfire, cluster: Client) -> None:
    sql = SQL + " ORDER BY start_timestamp, span_id"
    ddf = _dask(srv, sql, partition_rows=4_000)
    assert ddf.known_divisions
    assert ddf.npartitions >= 4  # 28,500 rows in slices of at most 9,000
    assert ddf.index.dtype == "datetime64[us, UTC]"
    got = ddf.compute()
    want = _single(srv, sql)
    assert got.index.is_monotonic_increasing
    assert got.index.min() >= ddf.divisions[0]
    assert got.index.max() <= ddf.divisions[-1]
    expected = want.drop(columns="start_timestamp")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)  # the same rows in the same order
    assert (got.index == want["start_timestamp"].astype("datetime64[us, UTC]")).all()
    piece = ddf.loc[BASE + timedelta(minutes=5) : BASE + timedelta(minutes=10)]
    assert piece.npartitions < ddf.npartitions
    inside = want["start_timestamp"].between(BASE + timedelta(minutes=5), BASE + timedelta(minutes=10))
    assert sorted(piece.compute()["span_id"]) == sorted(want.loc[inside, "span_id"])


def test_unsliced_query_is_one_partition(srv: LocalLogfire, cluster: Client) -> None:
    sql = "SELECT level, count(*) AS n FROM records GROUP BY level ORDER BY level"
    ddf = _dask(srv, sql, partition_rows=1_000)
    assert ddf.npartitions == 1
    pd.testing.assert_frame_equal(ddf.compute(), _single(srv, sql))


def test_unsliced_query_past_the_cap_raises_row_cap_error(srv: LocalLogfire, cluster: Client) -> None:
    ddf = _dask(srv, "SELECT DISTINCT span_id FROM records")
    with pytest.raises(RowCapError, match="10,000-row cap"):
        ddf.compute()


def test_order_other_than_time_is_refused(srv: LocalLogfire) -> None:
    with pytest.raises(ConfigurationError, match="ORDER BY that does not start with the time column"):
        _dask(srv, SQL + " ORDER BY level")


def test_projection_narrows_the_sql(srv: LocalLogfire, cluster: Client) -> None:
    ddf = _dask(srv, SQL, partition_rows=6_000, time_index=False)
    before = len(srv.queries)
    got = ddf[["level"]].compute()
    sent = [q.sql for q in srv.queries[before:]]
    assert sent
    assert all(s.startswith('SELECT "level" FROM (') and "message" not in s.split("FROM")[0] for s in sent)
    pd.testing.assert_series_equal(
        got["level"].sort_values(ignore_index=True), _single(srv, SQL)["level"].sort_values(ignore_index=True)
    )


def test_projection_keeps_the_order_and_the_index(srv: LocalLogfire, cluster: Client) -> None:
    sql = SQL + " ORDER BY start_timestamp, span_id"
    got = _dask(srv, sql, partition_rows=6_000)["message"].compute()
    want = _single(srv, sql)
    assert list(got) == list(want["message"])
    assert (got.index == want["start_timestamp"].astype("datetime64[us, UTC]")).all()


def test_transient_faults_still_give_the_exact_result(srv: LocalLogfire, cluster: Client) -> None:
    ddf = _dask(srv, SQL, partition_rows=6_000, time_index=False)
    want = _single(srv, SQL)
    srv.faults.push("503", times=2)
    srv.faults.push("reset", times=1)
    got = ddf.compute()
    assert srv.faults.injected[-3:] == ["503", "503", "reset"]
    pd.testing.assert_frame_equal(_by_span(got), _by_span(want))


def test_json_columns_with_dtypes_decode_alike(srv: LocalLogfire, cluster: Client) -> None:
    dtypes = {"attributes": pl.Struct({"i": pl.Int64, "odd": pl.Boolean})}
    ddf = _dask(srv, SQL, partition_rows=6_000, time_index=False, json_columns=dtypes)
    want = _single(srv, SQL, json_columns=dtypes)
    pd.testing.assert_frame_equal(_by_span(ddf.compute()), _by_span(want))
    assert ddf.dtypes["attributes"] == want.dtypes["attributes"]


def test_numpy_nullable_dtypes_are_the_same_in_every_partition(srv: LocalLogfire, cluster: Client) -> None:
    ddf = _dask(srv, SQL, partition_rows=6_000, time_index=False, dtype_backend="numpy_nullable")
    dtypes = ddf.map_partitions(lambda part: pd.Series([str(t) for t in part.dtypes])).compute()
    assert set(dtypes.groupby(level=0).nunique()) == {1}
    pd.testing.assert_frame_equal(_by_span(ddf.compute()), _by_span(_single(srv, SQL, dtype_backend="numpy_nullable")))


def test_empty_window_gives_an_empty_frame_of_the_meta(srv: LocalLogfire, cluster: Client) -> None:
    ddf = _dask(srv, SQL, min_timestamp=END + timedelta(days=1))
    got = ddf.compute()
    assert got.empty
    assert list(got.dtypes) == list(ddf.dtypes)


def _reprs(node: object, depth: int = 0) -> Iterator[str]:
    """The repr of a graph node and of everything inside it: task arguments, data nodes, containers."""
    yield repr(node)
    if depth > 20:
        return
    if isinstance(node, list | tuple | set):
        inner: list[object] = list(node)
    elif isinstance(node, dict):
        inner = list(node.values())
    else:
        inner = [*getattr(node, "args", ()), *getattr(node, "kwargs", {}).values()]
        inner += [node.value] if hasattr(node, "value") else []
    for part in inner:
        yield from _reprs(part, depth + 1)


def test_token_is_absent_from_keys_reprs_errors_and_logs(srv: LocalLogfire, cluster: Client) -> None:
    token = srv.read_token
    ddf = _dask(srv, SQL, partition_rows=6_000)
    graph = ddf.__dask_graph__()
    texts = [repr(ddf), str(ddf.expr), ddf.expr.tree_repr(), repr(dict(graph)), *map(str, graph.keys())]
    texts += [text for task in graph.values() for text in _reprs(task)]
    assert any("read_token=<read token>" in text for text in texts)  # the walk reached the tasks' arguments
    assert all(token not in text for text in texts)
    keys = pickle.loads(pickle.dumps(list(graph.keys())))
    assert all(token not in str(key) for key in keys)
    srv.faults.push("500", times=40)
    try:
        with pytest.raises(SliceError) as caught:
            ddf.compute()
    finally:
        srv.faults.configure(None)
    assert token not in str(caught.value)
    assert token not in repr(caught.value)
    logs = cluster.get_worker_logs()
    assert logs
    assert all(token not in line for lines in logs.values() for _, line in lines)


def _setenv(name: str, value: str | None) -> None:
    """Set (or with None remove) an environment variable in the process this runs in."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def test_workers_read_their_own_environment_token(
    srv: LocalLogfire, cluster: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", srv.read_token)
    ddf = read_logfire(SQL, base_url=srv.base_url, partition_rows=6_000, time_index=False)
    assert srv.read_token.encode() not in pickle.dumps(ddf.__dask_graph__())  # not sent at all
    cluster.run(_setenv, "LOGFIRE_READ_TOKEN", srv.read_token)
    try:
        got = ddf.compute()
    finally:
        cluster.run(_setenv, "LOGFIRE_READ_TOKEN", None)
    pd.testing.assert_frame_equal(_by_span(got), _by_span(_single(srv, SQL)))


def _overlaps(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def _hold_leases(limit: object, threads: int) -> list[tuple[float, float]]:
    """Run in a task: ``threads`` threads each hold a lease of ``limit`` for 0.2 s; their (start, end) times."""
    limit.prepare()  # type: ignore[attr-defined]
    intervals: list[tuple[float, float]] = []

    def hold() -> None:
        with limit:  # type: ignore[attr-defined]
            start = time.time()
            time.sleep(0.2)
            intervals.append((start, time.time()))

    pool = [threading.Thread(target=hold) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return intervals


def test_max_concurrency_is_shared_by_the_whole_cluster(cluster: Client) -> None:
    limit = _limit("logfire-io-test-limit", 2)
    assert type(limit).__name__ == "_ClusterLimit"
    workers = list(cluster.scheduler_info()["workers"])
    futures = [cluster.submit(_hold_leases, limit, 3, workers=[w], pure=False) for w in workers]
    intervals = [interval for future in futures for interval in future.result()]
    assert len(intervals) == 6
    assert _overlaps(intervals) <= 2


def test_explicit_plan_reads_only_its_slices(srv: LocalLogfire) -> None:
    slices = (Slice(BASE, BASE + timedelta(minutes=1)), Slice(BASE + timedelta(minutes=1), BASE + timedelta(minutes=3)))
    request = ReadRequest(SQL, slices=slices, progress=False)
    before = len(srv.queries)
    with LogfireQueryClient(srv.read_token, base_url=srv.base_url) as client:
        tables = list(iter_tables(client, request, owns_client=False))
    assert len(srv.queries) - before == 2  # no whole-window try, no window or histogram query
    times = pa.concat_tables(tables).column("start_timestamp").to_pylist()
    assert min(times) >= BASE
    assert max(times) < BASE + timedelta(minutes=3)
    assert len(times) == len(_single(srv, SQL, max_timestamp=BASE + timedelta(minutes=3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition_rows": 0}, "`partition_rows` must be a positive integer"),
        ({"dtype_backend": None}, "`dtype_backend` must be 'pyarrow' or 'numpy_nullable'"),
        ({"json_columns": "auto"}, "`json_columns` must be a dict"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_logfire("SELECT 1", read_token="t", base_url="http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


def test_import_logfire_io_does_not_import_dask() -> None:
    code = "import sys, logfire_io; assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_example_runs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Past one machine", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split()[1] == "True"  # known divisions
    assert int(lines[0].split()[0]) >= 2
    assert "duration" in result.stdout


def test_a_computed_time_column_cannot_index_the_frame(srv: LocalLogfire, cluster: Client) -> None:
    sql = "SELECT start_timestamp + INTERVAL '2 hours' AS start_timestamp, span_id FROM records"
    with pytest.raises(ConfigurationError, match="not the driving table's time column"):
        _dask(srv, sql, partition_rows=6_000).compute()
    got = _dask(srv, sql, partition_rows=6_000, time_index=False).compute()
    pd.testing.assert_frame_equal(_by_span(got), _by_span(_single(srv, sql)))


def test_duplicate_output_names_are_refused(srv: LocalLogfire) -> None:
    sql = "SELECT r.span_id, p.span_id FROM records r JOIN records p ON r.trace_id = p.trace_id"
    with pytest.raises(ConfigurationError, match="duplicate column names"):
        _dask(srv, sql)
