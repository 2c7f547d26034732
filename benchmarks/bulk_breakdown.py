"""Where the time of a bulk read goes: client CPU, server CPU (HTTP process and query workers), and latency.

The server runs as its own process (`logfire-io serve`), so the CPU of each side is counted apart: the client's
from ``getrusage`` of this process, the server's from its process tree in /proc (psutil). Latency is the added
delay times the requests, divided by the read's concurrency.

    python benchmarks/bulk_breakdown.py --rows 1000000 --latency-ms 100
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import psutil

from logfire_io import plan, read_logfire

SQL = "SELECT * FROM records"


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds (user + system) of ``proc`` and its live children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start_server(rows: int, latency_ms: float) -> tuple[subprocess.Popen[str], str, str]:
    command = ["logfire-io", "serve", "--port", "0", "--demo-rows", str(rows), "--latency-ms", str(latency_ms)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = token = ""
    assert server.stdout is not None
    for line in server.stdout:
        if match := re.search(r"base URL:\s+(\S+)", line):
            url = match[1]
        if match := re.search(r"read token:\s+(\S+)", line):
            token = match[1]
        if "Press Ctrl-C" in line:
            return server, url, token
    msg = "the server exited before it was ready"
    raise RuntimeError(msg)


def _requests(url: str, token: str, concurrency: int) -> int:
    """Requests a default read sends, from its dry run (aggregates only, no row read)."""
    return plan(SQL, read_token=token, base_url=url, max_concurrency=concurrency).requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 1])
    parser.add_argument("--json-text", action="store_true", help="keep JSON columns as text (json_columns=None)")
    args = parser.parse_args()
    print(f"$ python benchmarks/bulk_breakdown.py {' '.join(sys.argv[1:])}")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    server, url, token = _start_server(args.rows, args.latency_ms)
    try:
        tree = psutil.Process(server.pid)
        print(
            "| max_concurrency | wall s | client CPU s | server CPU s | latency s (requests x delay / concurrency) "
            "| requests | rows |"
        )
        print("|---|---|---|---|---|---|---|")
        for concurrency in args.concurrency:
            requests = _requests(url, token, concurrency)
            server_before, client_before, started = _tree_cpu(tree), _own_cpu(), time.perf_counter()
            frame = read_logfire(SQL, read_token=token, base_url=url, max_concurrency=concurrency, progress=False)
            wall = time.perf_counter() - started
            client, served = _own_cpu() - client_before, _tree_cpu(tree) - server_before
            latency = requests * args.latency_ms / 1000 / concurrency
            print(
                f"| {concurrency} | {wall:.2f} | {client:.2f} | {served:.2f} | {latency:.2f} | {requests} "
                f"| {frame.height:,} |"
            )
            del frame
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
