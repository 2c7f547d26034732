"""Where the local server's time goes between the engine and the socket, as ratios measured in one run.

    python benchmarks/server_speed.py                 # 100,000 records, 40 interleaved rounds (about a minute)
    python benchmarks/server_speed.py --rows 1000000 --rounds 20
    python benchmarks/server_speed.py --rounds 30 --baseline /work/main/src   # before/after in one run

Two ratios (issue 12), each against a floor measured in the same run, rounds interleaved so that load on a
shared machine hits both sides alike:

- ``SELECT * FROM records_all LIMIT 10000`` as an Arrow stream over HTTP, vs the engine alone producing the
  same IPC bytes in this process (``Engine.plan`` + ``Engine.batches`` + ``pyarrow.ipc``). Target: <= 1.5x.
- ``SELECT 1`` over HTTP, vs a trivial route of the same HTTP stack (``GET /v1/read-token-info``: token
  check and a small JSON answer, no worker). Target: <= 2x.

The server is ``logfire-io serve`` in its own process, as a user runs it, over Parquet files; the engine alone
loads the same files the same way. The HTTP client is ``http.client`` on one kept-alive connection, reading
whole bodies (like curl: it measures the server, not a client's decoding); httpx is shown too, for what a
Python client sees. ``accept-encoding: identity``, as on loopback. Each measurement starts 20 ms after the
previous one ended, so none pays for the tail of another. Medians.

``--baseline SRC`` also starts a server from another source tree (``PYTHONPATH=SRC``: say, ``main`` before a
change) over the same files, and measures it in the same interleaved rounds, against the same engine figure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server import synth_metrics, synth_records
from logfire_io.server.engine import Engine, QuerySpec
from logfire_io.server.store import Store
from logfire_io.server.tables import conform, load

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

END = datetime(2026, 1, 1, tzinfo=UTC)
BULK = "SELECT * FROM records_all LIMIT 10000"
ARROW = "application/vnd.apache.arrow.stream"
ENGINE = "engine alone: plan, run, IPC bytes (in-process)"
BULK_HTTP = "HTTP Arrow, LIMIT 10000 (http.client)"
TO_HEADERS = "of which request to headers (the rest: the body)"


def engine_run(engine: Engine) -> list[pa.RecordBatch]:
    """The engine's part of the bulk query without the encoding: plan and run, in this process."""
    frame, _ = engine.plan(QuerySpec(sql=BULK, limit=10_000, min_timestamp=0))
    return list(engine.batches(frame))


def engine_alone(engine: Engine) -> pa.Buffer:
    """What the engine does for the bulk query, in this process: plan, run, write the Arrow IPC stream.

    The stream is written the cheapest way known: its length from a dry run, then once into a buffer of exactly
    that size (a growing ``BufferOutputStream`` copies as it grows, and would flatter the server).
    """
    batches = engine_run(engine)
    counter = pa.MockOutputStream()
    _write(batches, counter)
    buffer = pa.allocate_buffer(counter.size())
    _write(batches, pa.FixedSizeBufferWriter(buffer))
    return buffer


def _write(batches: list[pa.RecordBatch], sink: pa.NativeFile) -> None:
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)


class Raw:
    """One kept-alive ``http.client`` connection: the least client work per request.

    Bodies are read into one reused buffer, as ``curl -o /dev/null`` would: the time is the server's and the
    socket's, not a client's joining of pieces.
    """

    def __init__(self, base_url: str, token: str) -> None:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = token
        self.buffer = memoryview(bytearray(64 << 20))
        self.to_headers = 0.0
        """Seconds from the last POST's start to its response headers (the rest is the body's transfer)."""

    def post(self, sql: str, accept: str) -> memoryview:
        body = json.dumps({"sql": sql, "min_timestamp": "1970-01-01T00:00:00Z", "limit": 10_000})
        headers = {
            "authorization": self.token,
            "accept": accept,
            "accept-encoding": "identity",
            "content-type": "application/json",
        }
        started = time.perf_counter()
        self.conn.request("POST", "/v2/query", body, headers)
        response = self.conn.getresponse()
        self.to_headers = time.perf_counter() - started
        assert response.status == 200, response.read()[:200]
        size = 0
        while got := response.readinto(self.buffer[size:]):
            size += got
        return self.buffer[:size]

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path, headers={"authorization": self.token})
        response = self.conn.getresponse()
        data = response.read()
        assert response.status == 200, data[:200]
        return data


@contextlib.contextmanager
def _serve(tmp: Path, source: str | None) -> Iterator[tuple[str, str]]:
    """``logfire-io serve`` in its own process (as a user runs it), over the tables in ``tmp``; yields URL and token.

    ``source``: the ``src`` directory to run it from (None: this interpreter's ``logfire_io``).
    """
    command = [sys.executable, "-m", "logfire_io._cli", "serve", "--port", "0", "--read-token", "pylf_v1_local_bench"]
    command += ["--records", str(tmp / "records.parquet"), "--metrics", str(tmp / "metrics.parquet")]
    env = os.environ if source is None else {**os.environ, "PYTHONPATH": source}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)  # default workers: 2 on 2 cores
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                msg = "the server exited before it was ready"
                raise RuntimeError(msg)
            lines.append(line)
        yield next(line.split()[-1] for line in lines if "base URL" in line), "pylf_v1_local_bench"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _http_cases(
    raw: Raw, base_url: str, token: str, tag: str, stack: contextlib.ExitStack
) -> dict[str, Callable[[], object]]:
    client = stack.enter_context(httpx.Client(base_url=base_url, headers={"authorization": token}, timeout=60))
    return {
        BULK_HTTP + tag: lambda: raw.post(BULK, ARROW),
        f"HTTP Arrow, LIMIT 10000 (httpx){tag}": lambda: (
            client.post(
                "/v2/query",
                json={"sql": BULK, "min_timestamp": "1970-01-01T00:00:00Z", "limit": 10_000},
                headers={"accept": ARROW, "accept-encoding": "identity"},
            ).content
        ),
        f"trivial route: GET /v1/read-token-info (http.client){tag}": lambda: raw.get("/v1/read-token-info"),
        f"HTTP SELECT 1, JSON (http.client){tag}": lambda: raw.post("SELECT 1", "application/json"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--baseline", metavar="SRC", help="also measure a server run from this source tree")
    args = parser.parse_args()

    records = synth_records(args.rows, end=END, span=timedelta(days=2))
    metrics = synth_metrics(args.rows // 10, end=END, span=timedelta(days=2))
    tags = {"": None} | ({" (baseline)": args.baseline} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        pq.write_table(records, Path(tmp) / "records.parquet")
        pq.write_table(metrics, Path(tmp) / "metrics.parquet")
        store = Store(Path(tmp) / "engine", {"records_all": RECORDS_SCHEMA, "metrics": METRICS_SCHEMA})
        stack.callback(store.close)
        store.put_loaded("records_all", conform(load(Path(tmp) / "records.parquet"), RECORDS_SCHEMA, "records"))
        store.put_loaded("metrics", conform(load(Path(tmp) / "metrics.parquet"), METRICS_SCHEMA, "metrics"))
        engine = Engine({name: str(store.directory(name)) for name in ("records_all", "metrics")}, memory_limit=2 << 30)
        servers = {tag: stack.enter_context(_serve(Path(tmp), source)) for tag, source in tags.items()}
        raws = {tag: Raw(*server) for tag, server in servers.items()}
        cases: dict[str, Callable[[], object]] = {
            ENGINE: lambda: engine_alone(engine),
            "of which plan and run (no encoding)": lambda: engine_run(engine),
            "engine alone, IPC into a growing buffer (the floor used until 2026-12-02 14:00)": lambda: _write(
                engine_run(engine), pa.BufferOutputStream()
            ),
        }
        for tag, (base_url, token) in servers.items():
            cases |= _http_cases(raws[tag], base_url, token, tag, stack)
        sizes = (len(raws[""].post(BULK, ARROW)) / 1e6, engine_alone(engine).size / 1e6)
        for func in cases.values():  # warm up: first touches of the mapped tables, first sessions
            for _ in range(3):
                func()
        samples: dict[str, list[float]] = {name: [] for name in cases} | {TO_HEADERS + tag: [] for tag in tags}
        for _ in range(args.rounds):
            for name, func in cases.items():
                time.sleep(0.02)
                samples[name].append(_timed(func))
                tag = name.removeprefix(BULK_HTTP)
                if tag in raws and name != tag:  # a bulk answer: when its headers came, from the same request
                    samples[TO_HEADERS + tag].append(raws[tag].to_headers)
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    averages = os.getloadavg()
    print(f"Command: `python benchmarks/server_speed.py {' '.join(sys.argv[1:])}`".replace(" `", "`"))
    print(f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"Load average at the end: {averages[0]:.1f} / {averages[1]:.1f} / {averages[2]:.1f} (1 / 5 / 15 min)")
    print(
        f"{args.rows:,} records; medians of {args.rounds} interleaved rounds; "
        f"Arrow body over HTTP {sizes[0]:.2f} MB, from the engine alone {sizes[1]:.2f} MB"
    )
    print()
    print("| what | ms (median) |")
    print("|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.1f} |")
    print()
    for tag in tags:
        bulk_ratio = medians[BULK_HTTP + tag] / medians[ENGINE]
        tiny_ratio = (
            medians[f"HTTP SELECT 1, JSON (http.client){tag}"]
            / medians[f"trivial route: GET /v1/read-token-info (http.client){tag}"]
        )
        print(f"- HTTP Arrow / engine alone{tag}: **{bulk_ratio:.2f}x** (target <= 1.5x)")
        print(f"- HTTP SELECT 1 / trivial route{tag}: **{tiny_ratio:.2f}x** (target <= 2x)")


if __name__ == "__main__":
    main()
