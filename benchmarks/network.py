"""Network benchmarks of issue 16: the receive path, and a read under a rate limit, each beside its baseline.

    python benchmarks/network.py receive [--repeat 15]      # MB/s, socket to Arrow, vs httpx and a raw socket
    python benchmarks/network.py ratelimit [--rate 20] [--latency-ms 100]   # rows/s and 429s under a rate limit

``receive`` serves one ~10 MB Arrow body (10,000 records) from a minimal HTTP server in another process, so the
server costs nothing but ``sendall`` and the figures are the client's own. Rounds are interleaved (each round
runs every path once) and medians reported, so load on the machine affects every path alike.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import END, MB, SPAN, _machine, _table

if TYPE_CHECKING:
    from collections.abc import Callable

ARROW = "application/vnd.apache.arrow.stream"
SQL = "SELECT * FROM records_all"


# ---------------------------------------------------------------------------------------------- receive
def _arrow_body() -> bytes:
    import pyarrow as pa

    from logfire_io.server import synth_records

    table = synth_records(10_000, end=END)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=1_000)
    return sink.getvalue().to_pybytes()


def _static_server(listener: socket.socket, body: bytes) -> None:
    """Answer every request on every connection with ``body`` (keep-alive, a thread per connection), until killed."""
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {ARROW}\r\ncontent-length: {len(body)}\r\n\r\n".encode()

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65_536)
                if not data:
                    conn.close()
                    return
                buffered += data
            request, buffered = buffered.split(b"\r\n\r\n", 1)
            lines = request.lower().split(b"\r\n")
            length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), 0)
            while len(buffered) < length:
                buffered += conn.recv(65_536)
            buffered = buffered[length:]
            conn.sendall(head + body)

    while True:
        threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()


def _raw_socket(port: int, size: int) -> Callable[[], Any]:
    """The floor: one keep-alive connection, the body received into a preallocated buffer."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"POST /v2/query HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"

    def receive() -> memoryview:
        conn.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        head, start = head.split(b"\r\n\r\n", 1)
        buffer = bytearray(size)
        view = memoryview(buffer)
        view[: len(start)] = start
        got = len(start)
        while got < size:
            got += conn.recv_into(view[got:], size - got)
        return view

    return receive


def bench_receive(repeat: int) -> str:
    import httpx
    import pyarrow as pa

    from logfire_io import LogfireQueryClient

    body = _arrow_body()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(target=_static_server, args=(listener, body), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base)
    ours = LogfireQueryClient("pylf_v1_local_bench", base_url=base)
    raw = _raw_socket(port, len(body))

    def httpx_stream() -> pa.Table:
        with http.stream("POST", "/v2/query", json={"sql": SQL}) as response:
            data = b"".join(response.iter_bytes())
        return pa.ipc.open_stream(data).read_all()

    paths: dict[str, Callable[[], Any]] = {
        "raw socket into a preallocated buffer (floor, no decoding)": raw,
        "raw socket + pyarrow open_stream (floor, decoded)": lambda: pa.ipc.open_stream(raw()).read_all(),
        "httpx default streaming (iter_bytes, join) + pyarrow": httpx_stream,
        "logfire-io query_arrow (decoded, every batch validated)": lambda: ours.query_arrow(SQL),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for func in paths.values():
            func()  # warm up: connections, imports
        for _ in range(repeat):
            for name, func in paths.items():
                started = time.perf_counter()
                func()
                samples[name].append(time.perf_counter() - started)
    finally:
        ours.close()
        http.close()
        server.kill()
        server.join()
        listener.close()
    floor = statistics.median(samples["raw socket into a preallocated buffer (floor, no decoding)"])
    rows = []
    for name, times in samples.items():
        median = statistics.median(times)
        rows.append([name, f"{median * 1000:.1f}", f"{len(body) / MB / median:,.0f}", f"{median / floor:.2f}x"])
    return _table(
        f"Receive path: one {len(body) / MB:.1f} MB Arrow body (10,000 records) over loopback, median of {repeat}",
        ["path", "ms", "MB/s", "time vs floor"],
        rows,
    )


# ---------------------------------------------------------------------------------------------- rate limit
def _official_loop(srv: Any, low: datetime, high: datetime, windows: int) -> int:
    """The loop a user writes: fixed windows one after the other, sleeping ``retry_after`` on a 429."""
    from logfire.query_client import LogfireQueryClient, QueryRateLimitedError

    step = (high - low) / windows
    rows = 0
    with LogfireQueryClient(srv.read_token, base_url=srv.base_url) as client:
        for i in range(windows):
            sql = (
                f"SELECT span_id FROM records_all WHERE start_timestamp >= '{(low + step * i).isoformat()}' "
                f"AND start_timestamp < '{(low + step * (i + 1)).isoformat()}'"
            )
            while True:  # the official client raises a 429 to the caller, with the service's Retry-After
                try:
                    rows += client.query_arrow(sql, min_timestamp=low, max_timestamp=high, limit=10_000).num_rows
                    break
                except QueryRateLimitedError as exc:
                    time.sleep(exc.retry_after or 1)
    return rows


def bench_ratelimit(records: int, rate: float, slices: int, latency_ms: float) -> str:
    from logfire_io import read_logfire_arrow
    from logfire_io.server import LocalLogfire

    low, high = END - SPAN, END
    results = []
    with LocalLogfire(demo_rows=records, demo_end=END, workers=2, rate_limit=rate, latency_ms=latency_ms) as srv:
        for name in ("official loop", "logfire-io read_logfire_arrow"):
            time.sleep(1.5)  # a full bucket for each
            first = len(srv.rate_log)
            started = time.monotonic()
            if name == "official loop":
                rows = _official_loop(srv, low, high, slices)
            else:
                sql = "SELECT span_id FROM records_all"
                rows = read_logfire_arrow(
                    sql,
                    read_token=srv.read_token,
                    base_url=srv.base_url,
                    min_timestamp=low,
                    max_timestamp=high,
                    slices=slices,
                    max_concurrency=8,
                    progress=False,
                ).num_rows
            elapsed = time.monotonic() - started
            decisions = srv.rate_log[first:]
            refused = sum(1 for d in decisions if d.retry_after)
            accepted = len(decisions) - refused
            results.append(
                [
                    name,
                    f"{rows:,}",
                    f"{elapsed:.2f}",
                    f"{rows / elapsed:,.0f}",
                    str(len(decisions)),
                    str(refused),
                    f"{accepted / elapsed:.1f} / {rate:g} = {accepted / elapsed / rate:.2f}",
                ]
            )
            print(f"  {results[-1]}", file=sys.stderr, flush=True)
    return _table(
        f"Rate-limited read: {records:,} records in {slices} slices, "
        f"`LocalLogfire(rate_limit={rate:g}, latency_ms={latency_ms:g})`, ours at `max_concurrency=8`",
        ["client", "rows", "seconds", "rows/s", "requests", "429s", "accepted req/s / allowed"],
        results,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["receive", "ratelimit"])
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds of the receive benchmark")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s the server allows (ratelimit)")
    parser.add_argument("--records", type=int, default=400_000, help="records served (ratelimit)")
    parser.add_argument("--slices", type=int, default=200, help="slices (and official loop windows) (ratelimit)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="latency added to every answer (ratelimit)")
    args = parser.parse_args()
    command = " ".join(["python", "benchmarks/network.py", *sys.argv[1:]])
    out = [
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}  ",
        f"Machine: {_machine()}",
        "",
    ]
    if args.which == "receive":
        out.append(bench_receive(args.repeat))
    else:
        out.append(bench_ratelimit(args.records, args.rate, args.slices, args.latency_ms))
    print("\n".join(out))


if __name__ == "__main__":
    main()
