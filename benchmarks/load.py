"""The local server under load and attack: many concurrent clients mixing valid queries, bad SQL and attacks.

    python benchmarks/load.py --clients 50 --seconds 30

Every valid query must answer correctly, every bad query and attack must be refused (400/422), no request may
hang (each has a 60 s timeout), and memory must stay bounded. Traffic goes to 127.0.0.1 only, and the loop
stops by itself after ``--seconds``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from logfire_io.server import LocalLogfire

VALID = [
    ("SELECT count(*) AS n FROM records_all", None),
    ("SELECT span_id FROM records_all ORDER BY span_id LIMIT 5", None),
    ("SELECT service_name, count(*) AS n FROM records GROUP BY 1 ORDER BY 1", None),
    ("SELECT * FROM records WHERE level >= 'error' ORDER BY span_id LIMIT 200", None),
    ("SELECT attributes->>'http.route' AS route, count(*) AS n FROM records GROUP BY 1 ORDER BY 1", None),
]
INVALID = ["SELEC 1", "SELECT nope FROM records", "SELECT * FROM nowhere"]
ATTACKS = [
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    "COPY (SELECT 1) TO '/tmp/logfire-io-attack.csv'",
    "DROP TABLE records_all",
    "INSERT INTO records_all SELECT * FROM records_all",
    "SET datafusion.execution.batch_size = 1",
    "SELECT * FROM '/etc/passwd'",
]


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the query workers)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    import os

    with LocalLogfire(demo_rows=args.rows) as srv:
        headers = {"authorization": srv.read_token}
        with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as warm:
            expected = {
                sql: warm.post(
                    "/v2/query", json={"sql": sql, "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000}
                ).json()["data"]
                for sql, _ in VALID
            }
        rss_before = _tree_rss_mb(os.getpid())
        latencies: list[float] = []
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as http:
                while time.monotonic() < stop:
                    kind = rng.choices(["valid", "invalid", "attack"], weights=[6, 2, 2])[0]
                    sql = rng.choice(
                        [q for q, _ in VALID] if kind == "valid" else INVALID if kind == "invalid" else ATTACKS
                    )
                    started = time.monotonic()
                    try:
                        response = http.post(
                            "/v2/query", json={"sql": sql, "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000}
                        )
                        elapsed = time.monotonic() - started
                        if kind == "valid":
                            ok = response.status_code == 200 and response.json()["data"] == expected[sql]
                        else:
                            ok = response.status_code in {400, 422}
                        result = f"{kind} {'ok' if ok else 'WRONG ' + str(response.status_code)}"
                    except httpx.HTTPError as exc:
                        elapsed = time.monotonic() - started
                        result = f"{kind} FAILED {type(exc).__name__}"
                    with lock:
                        latencies.append(elapsed)
                        outcomes[result] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        peak = rss_before
        while any(t.is_alive() for t in threads):
            peak = max(peak, _tree_rss_mb(os.getpid()))
            time.sleep(0.5)
        wall = time.monotonic() - started
    latencies.sort()
    bad = sum(n for k, n in outcomes.items() if not k.endswith(" ok"))
    print(f"Command: python benchmarks/load.py --clients {args.clients} --seconds {args.seconds:g} --rows {args.rows}")
    print(f"{len(latencies):,} requests in {wall:.1f} s from {args.clients} clients; wrong or failed: {bad}")
    for key, count in sorted(outcomes.items()):
        print(f"  {key}: {count:,}")
    print(
        f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    print(
        f"server RSS (with workers) before {rss_before:.0f} MB, peak {peak:.0f} MB "
        f"(includes this process's {args.clients} client threads)"
    )
    print(f"/tmp/logfire-io-attack.csv exists: {Path('/tmp/logfire-io-attack.csv').exists()}")


if __name__ == "__main__":
    main()
