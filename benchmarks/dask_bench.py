"""Single process vs Dask: wall time and peak memory per process for one bulk read.

    python benchmarks/dask_bench.py --rows 200000 --latency-ms 100 --workers 2,4 --partition-rows 20000

One LocalLogfire serves ``--rows`` records in this process. The single-process variant runs
``read_logfire_pandas`` in a fresh process (so its peak RSS is its own). Each Dask variant starts a
``LocalCluster`` of worker processes (one thread each), reads with ``logfire_io.dask.read_logfire`` and counts
rows per partition on the workers (``map_partitions(len)``), so that no worker and not the driver ever holds the
whole result: each worker's peak RSS is then bounded by the partitions it holds at once, not by the result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import END, SPAN, _machine, _peak_rss_mb, _table

SQL = "SELECT * FROM records_all"


def _single(base_url: str, token: str) -> dict[str, Any]:
    import logfire_io

    started = time.perf_counter()
    frame = logfire_io.read_logfire_pandas(
        SQL,
        read_token=token,
        base_url=base_url,
        min_timestamp=END - SPAN,
        max_timestamp=END,
        json_columns=None,
        dtype_backend="pyarrow",
        progress=False,
    )
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(frame),
        "peak_rss_mb": _peak_rss_mb(),
        "frame_mb": frame.memory_usage(deep=True).sum() / 2**20,
    }


def _warm_rss_mb(base_url: str, token: str) -> float:
    """A worker's peak RSS after a one-row read (every module loaded, one client used): its cost before data."""
    import logfire_io

    logfire_io.read_logfire_pandas(
        "SELECT * FROM records_all LIMIT 1", read_token=token, base_url=base_url, dtype_backend="pyarrow"
    )
    return _peak_rss_mb()


def _dask(base_url: str, token: str, workers: int, partition_rows: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    import logfire_io.dask

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        warm = client.run(_warm_rss_mb, base_url, token)
        started = time.perf_counter()
        ddf = logfire_io.dask.read_logfire(
            SQL,
            read_token=token,
            base_url=base_url,
            min_timestamp=END - SPAN,
            max_timestamp=END,
            partition_rows=partition_rows,
        )
        planned = time.perf_counter() - started
        rows = int(ddf.map_partitions(len).compute().sum())
        seconds = time.perf_counter() - started
        peaks = client.run(_peak_rss_mb)
    return {
        "seconds": seconds,
        "plan_seconds": planned,
        "rows": rows,
        "partitions": ddf.npartitions,
        "warm_rss_mb": sorted(warm.values()),
        "peak_rss_mb": sorted(peaks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workers", default="2,4")
    parser.add_argument("--partition-rows", type=int, default=20_000)
    parser.add_argument("--_single", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._single:
        print(json.dumps(_single(*args._single)))
        return

    from logfire_io.server import LocalLogfire

    with LocalLogfire(demo_rows=args.rows, demo_end=END, demo_span=SPAN, latency_ms=args.latency_ms) as srv:
        output = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--_single", srv.base_url, srv.read_token],
            capture_output=True,
            text=True,
            check=True,
        )
        single = json.loads(output.stdout.strip().splitlines()[-1])
        rows = [
            [
                "single process, `read_logfire_pandas`",
                f"{single['rows']:,}",
                "1",
                f"{single['seconds']:.2f}",
                f"{single['peak_rss_mb']:.0f}",
                "",
            ]
        ]
        for workers in map(int, args.workers.split(",")):
            result = _dask(srv.base_url, srv.read_token, workers, args.partition_rows)
            rows.append(
                [
                    f"Dask, {workers} worker processes (plan {result['plan_seconds']:.2f} s)",
                    f"{result['rows']:,}",
                    str(result["partitions"]),
                    f"{result['seconds']:.2f}",
                    ", ".join(f"{mb:.0f}" for mb in result["peak_rss_mb"]),
                    ", ".join(f"{mb:.0f}" for mb in result["warm_rss_mb"]),
                ]
            )
    print(
        f"`python benchmarks/dask_bench.py --rows {args.rows} --latency-ms {args.latency_ms:g} "
        f"--workers {args.workers} --partition-rows {args.partition_rows}`\n"
    )
    print(_machine() + "\n")
    print(f"Whole result in one process: {single['frame_mb']:.0f} MB as a pandas frame.\n")
    print(
        _table(
            f"{args.rows:,} records, {args.latency_ms:g} ms latency, partitions of ~{args.partition_rows:,} rows",
            [
                "variant",
                "rows",
                "partitions",
                "seconds",
                "peak RSS per process (MB)",
                "worker RSS after a 1-row read (MB)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
