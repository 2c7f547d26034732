"""logfire-io benchmarks, each against the baseline a user would otherwise use, measured in the same run.

    python benchmarks/bench.py all --rows 1000000 --latency-ms 100     # everything, prints Markdown tables
    python benchmarks/bench.py bulk|single|decode|json|server [...]     # one benchmark

Reads run in a fresh process per variant (so peak RSS is that variant's own) against one LocalLogfire in
this process. Figures are medians where repeated; the machine and versions are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
END = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=2)
MB = 1024 * 1024
BULK_VARIANTS = ["official_loop", "ours_default", "ours_pandas", "ours_c1", "ours_c4", "ours_c16"]


# ---------------------------------------------------------------------------------------------- child variants
def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _variant(name: str, base_url: str, token: str, rows: int) -> dict[str, Any]:
    import polars as pl

    low, high = END - SPAN, END
    started = time.perf_counter()
    first_batch = None
    if name.startswith("ours"):
        import logfire_io

        if name == "ours_iter":
            with logfire_io.LogfireQueryClient(token, base_url=base_url) as client:
                batches = []
                for batch in client.iter_arrow_batches("SELECT * FROM records_all", low, high, 10_000):
                    first_batch = first_batch or time.perf_counter() - started
                    batches.append(batch)
            frame = pl.from_arrow(batches)
        elif name == "ours_single":
            with logfire_io.LogfireQueryClient(token, base_url=base_url) as client:
                frame = pl.from_arrow(client.query_arrow("SELECT * FROM records_all", low, high, 10_000))
        else:
            concurrency = {"ours_default": None, "ours_pandas": None, "ours_c1": 1, "ours_c4": 4, "ours_c16": 16}[name]
            reader = logfire_io.read_logfire_pandas if name == "ours_pandas" else logfire_io.read_logfire
            result = reader(
                "SELECT * FROM records_all",
                read_token=token,
                base_url=base_url,
                min_timestamp=low,
                max_timestamp=high,
                max_concurrency=concurrency,
                json_columns=None,
                progress=False,
            )
            if name == "ours_pandas":
                elapsed = time.perf_counter() - started  # before measuring the frame, which walks every string
                return _result(name, elapsed, first_batch, len(result), result.memory_usage(deep=True).sum())
            frame = result
    else:
        from logfire.query_client import LogfireQueryClient

        with LogfireQueryClient(token, base_url=base_url) as client:
            if name == "official_single":
                frame = pl.from_arrow(
                    client.query_arrow("SELECT * FROM records_all", min_timestamp=low, max_timestamp=high, limit=10_000)
                )
            else:  # the loop a user writes to get past the row cap: fixed windows, one after the other
                windows = max(1, round(rows / 6_500))
                step = SPAN / windows
                frames, full = [], 0
                for i in range(windows):
                    sql = (
                        "SELECT * FROM records_all WHERE start_timestamp >= "
                        f"'{(low + step * i).isoformat()}' AND start_timestamp < '{(low + step * (i + 1)).isoformat()}'"
                    )
                    table = client.query_arrow(sql, min_timestamp=low, max_timestamp=high, limit=10_000)
                    full += table.num_rows == 10_000
                    frames.append(pl.from_arrow(table))
                frame = pl.concat(frames)
                if full:
                    print(f"warning: {full} windows hit the cap; the official loop lost rows", file=sys.stderr)
    elapsed = time.perf_counter() - started
    assert isinstance(frame, pl.DataFrame)
    return _result(name, elapsed, first_batch, frame.height, frame.estimated_size())


def _result(name: str, elapsed: float, first_batch: float | None, rows: int, frame_bytes: int) -> dict[str, Any]:
    """A variant's figures; a pandas frame's size is ``memory_usage(deep=True)``, polars' ``estimated_size()``."""
    return {
        "variant": name,
        "seconds": elapsed,
        "first_batch_seconds": first_batch if first_batch is not None else elapsed,
        "rows": rows,
        "peak_rss_mb": _peak_rss_mb(),
        "frame_mb": frame_bytes / MB,
    }


def _run_variant(name: str, base_url: str, token: str, rows: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, str(HERE), "_variant", name, base_url, token, str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    if output.stderr.strip():
        print(output.stderr.strip(), file=sys.stderr)
    return json.loads(output.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- benchmarks
def _machine() -> str:
    import datafusion
    import httpx
    import logfire
    import pyarrow as pa

    import polars as pl

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}, "
        f"polars {pl.__version__}, pyarrow {pa.__version__}, httpx {httpx.__version__}, "
        f"datafusion {datafusion.__version__}, official logfire SDK {logfire.VERSION}"
    )


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bench_reads(srv: Any, rows: int, variants: list[str], title: str) -> str:
    results = []
    for name in variants:
        before = len(srv.queries)
        result = _run_variant(name, srv.base_url, srv.read_token, rows)
        result["requests"] = len(srv.queries) - before
        results.append(result)
        print(f"  {name}: {result}", file=sys.stderr, flush=True)
    baseline = next(r for r in results if r["variant"].startswith("official"))
    table = [
        [
            r["variant"],
            f"{r['rows']:,}",
            f"{r['seconds']:.2f}",
            f"{baseline['seconds'] / r['seconds']:.1f}x",
            f"{r['first_batch_seconds']:.3f}",
            str(r["requests"]),
            f"{r['requests'] * 1_000_000 / max(r['rows'], 1):.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['frame_mb']:.0f}",
            f"{r['peak_rss_mb'] / r['frame_mb']:.2f}",
        ]
        for r in results
    ]
    header = [
        "variant",
        "rows",
        "seconds",
        "speed-up vs official",
        "first batch (s)",
        "requests",
        "requests / 1M rows",
        "peak RSS (MB)",
        "frame (MB)",
        "RSS / frame",
    ]
    return _table(title, header, table)


def bench_decode(srv: Any, repeat: int = 15) -> str:
    import httpx
    import pyarrow as pa

    import polars as pl
    from logfire_io._ipc import ArrowStreamDecoder

    body = httpx.post(
        f"{srv.base_url}/v2/query",
        json={"sql": "SELECT * FROM records_all", "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000},
        headers={
            "authorization": srv.read_token,
            "accept": "application/vnd.apache.arrow.stream",
            "accept-encoding": "identity",
        },
        timeout=60,
    ).content
    chunks = [body[i : i + 65_536] for i in range(0, len(body), 65_536)]

    def ours() -> pl.DataFrame:
        decoder = ArrowStreamDecoder()
        batches = [b for c in chunks for b in decoder.feed(c)]
        decoder.finish()
        return pl.from_arrow(pa.Table.from_batches(batches, decoder.schema), rechunk=False)  # type: ignore[return-value]

    def floor() -> pl.DataFrame:  # what a buffered client does: join the body, then let pyarrow read it
        return pl.from_arrow(pa.ipc.open_stream(b"".join(chunks)).read_all(), rechunk=False)  # type: ignore[return-value]

    batches = pa.ipc.open_stream(body).read_all().to_batches()

    def validation() -> None:  # the share of `ours` spent validating every batch in full (offsets, UTF-8)
        for batch in batches:
            batch.validate(full=True)

    times = {}
    for name, func in (
        ("join body + pyarrow open_stream + pl.from_arrow (floor)", floor),
        ("logfire-io incremental decoder, every batch validated in full", ours),
        ("  of which: RecordBatch.validate(full=True)", validation),
    ):
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            func()
            samples.append(time.perf_counter() - started)
        times[name] = statistics.median(samples)
    floor_time = times["join body + pyarrow open_stream + pl.from_arrow (floor)"]
    rows = [[name, f"{t * 1000:.1f}", f"{t / floor_time:.2f}x"] for name, t in times.items()]
    return _table(
        f"Decode: {len(body) / MB:.1f} MB Arrow body (10,000 rows) to a polars DataFrame, in 64 KiB chunks",
        ["path", "ms (median)", "vs floor"],
        rows,
    )


def _median_time(func: Any, repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls, and the last result (or the exception it raised)."""
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            result = func()
        except Exception as exc:  # reported in the table, not hidden
            result = exc
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def bench_json(rows: int, repeat: int = 5) -> str:
    import polars as pl
    from logfire_io._json import decode_json_array
    from logfire_io.server import synth_records

    column = synth_records(rows, end=END).column("attributes").combine_chunks()
    series = pl.Series(column)
    ours_time, ours = _median_time(lambda: decode_json_array(column), repeat)
    inferred_time, inferred = _median_time(lambda: series.str.json_decode(infer_schema_length=None), repeat)
    default_time, default = _median_time(lambda: series.str.json_decode(), repeat)

    def outcome(result: Any, ok: str) -> str:
        return f"fails: {str(result).splitlines()[0][:70]}" if isinstance(result, Exception) else ok

    results = [
        [
            "logfire-io (exact union schema)",
            ours_time,
            outcome(ours, f"{ours.type.num_fields} fields, every key kept, clashing types as JSON text"),
        ],
        [
            "polars str.json_decode(infer_schema_length=None)",
            inferred_time,
            outcome(inferred, "mixed-type keys become plain strings (`42` and `u-42`: the type is lost)"),
        ],
        ["polars str.json_decode() (default: first 100 rows)", default_time, outcome(default, "ok")],
    ]
    table = [
        [name, f"{seconds:.2f}", f"{rows / seconds / 1e6:.2f}", f"{seconds / ours_time:.2f}x", note]
        for name, seconds, note in results
    ]
    return _table(
        f"JSON: `attributes` of {rows:,} synthetic records to structs (median of {repeat})",
        ["method", "seconds", "M rows/s", "time vs logfire-io", "result"],
        table,
    )


def bench_server(srv: Any, repeat: int = 5) -> str:
    import httpx

    rows = []
    for fmt, accept in (
        ("Arrow", "application/vnd.apache.arrow.stream"),
        ("JSON", "application/json"),
        ("CSV", "text/csv"),
    ):
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = httpx.post(
                f"{srv.base_url}/v2/query",
                json={
                    "sql": "SELECT * FROM records LIMIT 10000",
                    "min_timestamp": "2020-01-01T00:00:00Z",
                    "limit": 10_000,
                },
                headers={"authorization": srv.read_token, "accept": accept, "accept-encoding": "identity"},
                timeout=120,
            )
            response.raise_for_status()
            samples.append(time.perf_counter() - started)
        seconds = statistics.median(samples)
        rows.append([fmt, f"{seconds * 1000:.0f}", f"{10_000 / seconds:,.0f}", f"{len(response.content) / MB:.1f}"])
    return _table(
        "Local server: `SELECT * FROM records LIMIT 10000`, no added latency",
        ["format", "ms (median)", "rows/s", "body (MB)"],
        rows,
    )


def main() -> None:
    if sys.argv[1:2] == ["_variant"]:
        name, base_url, token, rows = sys.argv[2:6]
        print(json.dumps(_variant(name, base_url, token, int(rows))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["all", "bulk", "single", "decode", "json", "server"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--gzip",
        choices=["auto", "always", "never"],
        default="auto",
        help="the server's gzip policy for clients that accept it, as `logfire-io serve --gzip` (both clients do, "
        "as httpx does by default); auto: everything but Arrow to loopback",
    )
    parser.add_argument("--variants", help="comma-separated bulk variants to run (default: all)")
    args = parser.parse_args()

    from logfire_io.server import LocalLogfire

    command = " ".join(["python", "benchmarks/bench.py", *sys.argv[1:]])
    out = [f"Command: `{command}`  ", f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ", f"Machine: {_machine()}", ""]
    if args.which in {"all", "json"}:
        out.append(bench_json(args.rows))
    if args.which in {"all", "bulk", "single", "decode", "server"}:
        started = time.perf_counter()
        with LocalLogfire(
            demo_rows=args.rows,
            demo_end=END,
            latency_ms=args.latency_ms,
            workers=2,
            gzip={"auto": "auto", "always": True, "never": False}[args.gzip],
        ) as srv:
            out.insert(
                3,
                f"Server: {args.rows:,} records synthesised and served in {time.perf_counter() - started:.1f} s; "
                f"{args.latency_ms:g} ms latency added to every query answer",
            )
            if args.which in {"all", "bulk"}:
                out.append(
                    bench_reads(
                        srv,
                        args.rows,
                        args.variants.split(",") if args.variants else BULK_VARIANTS,
                        f"Bulk read: all {args.rows:,} records ({args.latency_ms:g} ms latency, gzip {args.gzip})",
                    )
                )
            if args.which in {"all", "single"}:
                out.append(
                    bench_reads(
                        srv, args.rows, ["official_single", "ours_single", "ours_iter"], "Single request: 10,000 rows"
                    )
                )
            if args.which in {"all", "decode"}:
                out.append(bench_decode(srv))
        if args.which in {"all", "server"}:
            with LocalLogfire(demo_rows=args.rows, demo_end=END) as plain:
                out.append(bench_server(plain))
    print("\n".join(out))


if __name__ == "__main__":
    main()
