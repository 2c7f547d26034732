"""Concurrent clients mixing valid queries, bad SQL and attacks: right answers, refusals, nothing hangs.

A short version of ``benchmarks/load.py`` (50 clients for 30 s, figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from logfire_io.server import LocalLogfire

VALID = ["SELECT count(*) AS n FROM records_all", "SELECT span_id FROM records_all ORDER BY span_id LIMIT 5"]
REFUSED = ["SELEC 1", "DROP TABLE records_all", "COPY (SELECT 1) TO '/tmp/logfire-io-load.csv'", "SET x = 1"]


def test_concurrent_mixed_traffic(server: LocalLogfire) -> None:
    headers = {"authorization": server.read_token}
    body = {"min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        expected = {sql: http.post("/v2/query", json=body | {"sql": sql}).json()["data"] for sql in VALID}
    outcomes: Counter[str] = Counter()
    slowest = [0.0]
    lock = threading.Lock()
    stop = time.monotonic() + 4

    def client(index: int) -> None:
        queries = VALID + REFUSED
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            i = index
            while time.monotonic() < stop:
                sql = queries[i % len(queries)]
                i += 1
                started = time.monotonic()
                response = http.post("/v2/query", json=body | {"sql": sql})
                if sql in expected:
                    outcome = "valid ok" if response.json().get("data") == expected[sql] else "valid WRONG"
                else:
                    outcome = "refused ok" if response.status_code == 400 else f"refused WRONG {response.status_code}"
                with lock:
                    outcomes[outcome] += 1
                    slowest[0] = max(slowest[0], time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)  # nothing hung
    assert set(outcomes) == {"valid ok", "refused ok"}, outcomes
    assert sum(outcomes.values()) > 40
    assert slowest[0] < 30
