"""OTLP ingest into the local server: spans/s with the SDK's exporter, and query latency on ingested rows.

    python benchmarks/ingest.py --spans 100000 --exporters 1,4 --query-rows 1000000   # prints Markdown tables

1. Ingest: ``logfire-io serve --data-dir`` runs in its own process group (as a user runs it); this process makes
   ``--spans`` real spans with the ``logfire`` SDK (kept in memory, not timed), then exports them with the
   SDK's own exporter (``OTLPSpanExporter``, protobuf + gzip, batches of 512 as its batch processor sends)
   from N threads, while a query runs every 100 ms. Throughput is spans acknowledged per wall-clock second.
2. Queries: ``--query-rows`` rows (the SDK's requests repeated with fresh ids and later times, encoded ahead and
   posted from 2 threads, so a million rows take minutes, not the SDK's hours), ingested (as many sorted
   segments) vs the same rows loaded once from a Parquet file, each behind its own server; median latency of a
   few typical queries over 5 runs; for the aggregates, also the CPU time of each scan partition run alone
   (the longest is the query's wait on an idle 2-core machine), which compares the two layouts at any load.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import _machine, _table
from tests.server.otlp import ServeProcess

READ, WRITE = "pylf_v1_local_bench_read", "pylf_v1_local_bench_write"
BATCH = 512
QUERIES = {
    "count": "SELECT count(*) FROM records",
    "group by span_name": "SELECT span_name, count(*) AS n FROM records GROUP BY span_name ORDER BY n DESC",
    "last 10 s window": "SELECT span_id, message FROM records ORDER BY start_timestamp DESC LIMIT 100",
    "attribute filter": "SELECT count(*) FROM records WHERE attributes->>'route' = '/api/7'",
}
AGGREGATES = ("count", "group by span_name")
"""The queries whose scan partitions are also timed one by one."""


def _make_spans(count: int) -> list[Any]:
    """Real spans from the logfire SDK: half spans with attributes of several types, half logs inside them."""
    import logfire
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    logfire.configure(send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(memory)])
    for i in range(count // 2):
        with logfire.span("handle {route}", route=f"/api/{i % 50}", user_id=i, ok=True, payload={"items": [i, 2]}):
            logfire.info("step {n} done", n=i, ratio=i / 7)
    spans = [s for s in memory.get_finished_spans() if s.attributes.get("logfire.span_type") != "pending_span"]
    return spans[:count]


def _in_threads(run: Any, work: list[Any], threads: int) -> float:
    """Seconds for ``threads`` threads to ``run`` their share of ``work`` (one sender per thread)."""
    workers = [threading.Thread(target=run, args=(work[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def _batches(spans: list[Any]) -> list[list[Any]]:
    """Requests as the SDK's batch processor sends them: the spans as they are, for the exporter to encode."""
    return [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]


def _export(base_url: str, batches: list[list[Any]], threads: int) -> float:
    """Export every batch with the SDK's OTLP exporter from ``threads`` threads; returns the seconds taken."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    failures: list[int] = []

    def run(mine: list[list[Any]]) -> None:
        exporter = OTLPSpanExporter(
            endpoint=f"{base_url}/v1/traces", headers={"Authorization": WRITE}, compression=Compression.Gzip
        )
        for batch in mine:
            if exporter.export(batch) != SpanExportResult.SUCCESS:
                failures.append(len(batch))
        exporter.shutdown()

    elapsed = _in_threads(run, batches, threads)
    if failures:
        msg = f"{sum(failures)} spans were not acknowledged"
        raise RuntimeError(msg)
    return elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (the HTTP server; query workers are separate processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _encoded(spans: list[Any]) -> list[bytes]:
    """The request bodies the SDK's exporter would send, encoded ahead (protobuf, gzip) and not timed."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return [gzip.compress(encode_spans(batch).SerializeToString()) for batch in _batches(spans)]


def _scaled(spans: list[Any], rows: int) -> list[bytes]:
    """Bodies holding ``rows`` spans: the SDK's requests repeated, each copy with its own ids and a later time."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    requests = [encode_spans(batch) for batch in _batches(spans)]
    shift_ns = max(s.end_time for s in spans) - min(s.start_time for s in spans) + 1
    bodies: list[bytes] = []
    left = rows
    for copy in range((rows + len(spans) - 1) // len(spans)):
        mark = copy.to_bytes(3, "big")
        for request in requests:
            clone = type(request)()
            clone.CopyFrom(request)
            for group in clone.resource_spans:
                for scope in group.scope_spans:
                    del scope.spans[left:]
                    left -= len(scope.spans)
                    for span in scope.spans:
                        span.trace_id, span.span_id = mark + span.trace_id[3:], mark + span.span_id[3:]
                        if span.parent_span_id:
                            span.parent_span_id = mark + span.parent_span_id[3:]
                        span.start_time_unix_nano += copy * shift_ns
                        span.end_time_unix_nano += copy * shift_ns
            if any(scope.spans for group in clone.resource_spans for scope in group.scope_spans):
                bodies.append(gzip.compress(clone.SerializeToString(), 1))
    return bodies


def _post_encoded(base_url: str, bodies: list[bytes], threads: int) -> float:
    """Server capacity without the client's encoding cost; returns the seconds taken."""
    import httpx

    headers = {"authorization": WRITE, "content-type": "application/x-protobuf", "content-encoding": "gzip"}

    def run(mine: list[bytes]) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            for body in mine:
                client.post("/v1/traces", content=body).raise_for_status()

    return _in_threads(run, bodies, threads)


def _query(client: Any, sql: str) -> float:
    started = time.perf_counter()
    answer = client.post(
        "/v2/query", json={"sql": sql, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000}, timeout=120
    )
    answer.raise_for_status()
    return time.perf_counter() - started


def _partition_cpu_ms(directory: Path, sql: str, repeat: int = 5) -> list[float]:
    """CPU ms of each scan partition's partial aggregate, run one at a time (median of ``repeat``).

    The longest is what the query waits for on an idle 2-core machine, so this compares table layouts whatever
    the load of this one (wall-clock medians at load 10 do not).
    """
    from datafusion import SessionContext

    from logfire_io.server.engine import Engine, QuerySpec

    engine = Engine({"records_all": str(directory)}, memory_limit=2**31)
    frame, _ = engine.plan(QuerySpec(sql=sql, limit=10_000))
    plan = frame.execution_plan()
    while "mode=Partial" not in plan.display():
        plan = plan.children()[0]
    ctx = SessionContext()

    def once(partition: int) -> float:
        started = time.process_time()
        for _ in ctx.execute(plan, partition):
            pass
        return time.process_time() - started

    return [statistics.median(once(i) for _ in range(repeat)) * 1000 for i in range(plan.partition_count)]


def _querying(base_url: str, stop: threading.Event, samples: list[float]) -> None:
    import httpx

    with httpx.Client(base_url=base_url, headers={"authorization": READ}) as client:
        while not stop.wait(0.1):
            samples.append(_query(client, QUERIES["count"]))


def bench_ingest(spans: list[Any], exporters: list[int]) -> str:
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="logfire-io-bench-"))
    runs: list[tuple[str, int, Any, Any]] = [("SDK exporter", n, _batches, _export) for n in exporters]
    runs.append(("pre-encoded bodies (server only)", exporters[-1], _encoded, _post_encoded))
    for label, threads, prepare, send in runs:
        work = prepare(spans)
        data_dir = scratch / f"ingest-{len(rows)}"
        server = ServeProcess(data_dir, READ, WRITE)
        base_url = server.base_url
        try:
            stop, samples = threading.Event(), []
            querier = threading.Thread(target=_querying, args=(base_url, stop, samples))
            cpu, sender_cpu = _cpu_seconds(server.proc.pid), time.process_time()
            querier.start()
            rate = len(spans) / send(base_url, work, threads)
            cpu, sender_cpu = _cpu_seconds(server.proc.pid) - cpu, time.process_time() - sender_cpu
            stop.set()
            querier.join()
        finally:
            server.stop()
        segments = len(list((data_dir / "records_all").glob("seg-*.arrow")))
        shutil.rmtree(data_dir)
        rows.append(
            [
                label,
                str(threads),
                f"{rate:,.0f}",
                f"{len(spans) / cpu:,.0f}",
                f"{len(spans) / sender_cpu:,.0f}",
                f"{statistics.median(samples) * 1000:.0f}" if samples else "-",
                str(len(samples)),
                str(segments),
            ]
        )
    scratch.rmdir()
    table = _table(
        f"Ingest: {len(spans):,} logfire SDK spans, OTLP protobuf + gzip, {BATCH} per request, queries running",
        [
            "sender",
            "threads",
            "spans/s (wall)",
            "spans per server CPU-second",
            "spans per sender CPU-second",
            "count(*) during ingest, ms (median)",
            "queries",
            "segments left",
        ],
        rows,
    )
    return table


def bench_queries(spans: list[Any], rows: int, repeat: int = 5) -> tuple[str, str]:
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logfire_io.server.store import live_segments, read_segment

    bodies = _scaled(spans, rows)
    ingested_dir = Path(tempfile.mkdtemp(prefix="logfire-io-bench-")) / "ingested"
    ingested = ServeProcess(ingested_dir, READ, WRITE)
    try:
        cpu = _cpu_seconds(ingested.proc.pid)
        seconds = _post_encoded(ingested.base_url, bodies, 2)
        cpu = _cpu_seconds(ingested.proc.pid) - cpu
    finally:
        ingested.stop()
    loading = (
        f"{rows:,} rows posted in {seconds:.0f} s from 2 threads ({rows / seconds:,.0f} spans/s wall, "
        f"{rows / cpu:,.0f} spans per server CPU-second)"
    )
    pieces = [read_segment(p) for p in live_segments(ingested_dir / "records_all")]
    table = pa.concat_tables(pieces)
    parquet = ingested_dir.parent / "records.parquet"
    pq.write_table(table, parquet)
    del table
    ingested = ServeProcess(ingested_dir, READ, WRITE)
    loaded_dir = ingested_dir.parent / "loaded"
    loaded = ServeProcess(loaded_dir, READ, WRITE, f"--records={parquet}")
    table_rows = []
    try:
        with (
            httpx.Client(base_url=ingested.base_url, headers={"authorization": READ}) as on_ingested,
            httpx.Client(base_url=loaded.base_url, headers={"authorization": READ}) as on_loaded,
        ):
            for name, sql in QUERIES.items():
                for client in (on_ingested, on_loaded):
                    _query(client, sql)  # warm up: the workers map the segments once
                a = statistics.median(_query(on_ingested, sql) for _ in range(repeat))
                b = statistics.median(_query(on_loaded, sql) for _ in range(repeat))
                row = [name, f"{a * 1000:.0f}", f"{b * 1000:.0f}", f"{a / b:.2f}"]
                if name in AGGREGATES:
                    cpu = [_partition_cpu_ms(d / "records_all", sql) for d in (ingested_dir, loaded_dir)]
                    row += [" / ".join(f"{ms:.1f}" for ms in each) for each in cpu]
                    row.append(f"{max(cpu[0]) / max(cpu[1]):.2f}")
                table_rows.append(row + ["-"] * (7 - len(row)))
    finally:
        ingested.stop()
        loaded.stop()
        shutil.rmtree(ingested_dir.parent)
    title = f"Query latency on {sum(p.num_rows for p in pieces):,} rows: ingested ({len(pieces)} segments) vs Parquet"
    header = ["query", "ingested ms (median of 5)", "Parquet-loaded ms", "ratio"]
    header += ["scan partitions' CPU ms, ingested", "loaded", "longest partition ratio"]
    return loading, _table(title, header, table_rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--exporters", default="1,4", help="exporter thread counts to run, comma-separated")
    parser.add_argument("--query-rows", type=int, default=1_000_000, help="rows ingested for the query comparison")
    args = parser.parse_args()
    exporters = [int(n) for n in args.exporters.split(",")]
    started = datetime.now(UTC)
    spans = _make_spans(args.spans)
    ingest = bench_ingest(spans, exporters)
    loading, queries = bench_queries(spans, args.query_rows)
    command = f"python benchmarks/ingest.py --spans {args.spans} --exporters {args.exporters}"
    print(f"`{command} --query-rows {args.query_rows}`\n")
    print(f"{started:%Y-%m-%d %H:%M} UTC, {_machine()}, load average {os.getloadavg()[0]:.1f} at the end\n")
    print(ingest)
    print(loading + "\n")
    print(queries)
    print(f"(took {(datetime.now(UTC) - started) / timedelta(seconds=1):.0f} s)")


if __name__ == "__main__":
    main()
