"""What the resilience and stress tests share: a query that must be stopped, raw requests, pool checks."""

from __future__ import annotations

import socket
import time

import httpx
import orjson

from logfire_io.server import LocalLogfire

__all__ = ["ARROW", "SLOW", "assert_prompt_select_1", "raw_request", "wait_until_full"]

SLOW = "SELECT count(*) AS n FROM records a, records b, records c WHERE a.level + b.level > c.level"
"""A query that runs far past any deadline here (a three-way cross join), so it must be stopped."""
ARROW = "application/vnd.apache.arrow.stream"


def wait_until_full(srv: LocalLogfire, timeout: float = 20.0) -> None:
    """Wait until every worker is idle (replacements take about a second to start)."""
    deadline = time.monotonic() + timeout
    while len(srv.worker_pids.idle) < srv.workers:
        assert time.monotonic() < deadline, f"pool not full after {timeout} s: {srv.worker_pids}"
        time.sleep(0.05)


def assert_prompt_select_1(srv: LocalLogfire, times: int = 3) -> None:
    with httpx.Client(base_url=srv.base_url, headers={"authorization": srv.read_token}, timeout=30) as http:
        for _ in range(times):
            started = time.monotonic()
            response = http.post("/v2/query", json={"sql": "SELECT 1 AS one", "min_timestamp": "2020-01-01T00:00:00Z"})
            assert response.status_code == 200, response.text
            assert response.json()["data"] == [{"one": 1}]
            assert time.monotonic() - started < 2.0


def raw_request(srv: LocalLogfire, sql: str, *, accept: str = ARROW) -> socket.socket:
    """Send a query over a bare socket (so the test decides exactly when the client goes away)."""
    body = orjson.dumps({"sql": sql, "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000})
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v2/query HTTP/1.1\r\nhost: {host}\r\nauthorization: {srv.read_token}\r\naccept: {accept}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock
