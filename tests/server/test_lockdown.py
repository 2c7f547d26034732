"""The server runs SQL from whoever reaches it: no files, no writes, no settings, no runaway queries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logfire_io.server import LocalLogfire

ATTACKS = [
    "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '/etc/passwd'",
    "COPY (SELECT * FROM records) TO '{tmp}/stolen.csv'",
    "COPY records TO '{tmp}/stolen.parquet' STORED AS PARQUET",
    "INSERT INTO records_all SELECT * FROM records_all",
    "DELETE FROM records_all",
    "DROP TABLE records_all",
    "DROP VIEW records",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "SET datafusion.execution.batch_size = 1",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1; DROP TABLE records_all",
]


def _count(http: httpx.Client) -> int:
    response = http.post(
        "/v2/query", json={"sql": "SELECT count(*) AS n FROM records_all", "min_timestamp": "2020-01-01T00:00:00Z"}
    )
    return response.json()["data"][0]["n"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_and_changes_nothing(http: httpx.Client, tmp_path: Path, attack: str) -> None:
    before = _count(http)
    response = http.post(
        "/v2/query", json={"sql": attack.format(tmp=tmp_path), "min_timestamp": "2020-01-01T00:00:00Z"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert list(tmp_path.iterdir()) == []
    assert _count(http) == before


@pytest.fixture(scope="module")
def strict_server() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=3_000, workers=1, deadline=3, memory_limit=2 << 20) as srv:
        yield srv


@pytest.fixture
def client(strict_server: LocalLogfire) -> Iterator[httpx.Client]:
    headers = {"authorization": strict_server.read_token}
    with httpx.Client(base_url=strict_server.base_url, headers=headers, timeout=30) as client:
        yield client


def test_runaway_query_hits_deadline_and_server_recovers(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.post(
        "/v2/query",
        json={
            "sql": "SELECT count(*) FROM records a, records b, records c WHERE a.level + b.level > c.level",
            "min_timestamp": "2020-01-01T00:00:00Z",
        },
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert "deadline" in response.json()["detail"]
    assert elapsed < 10
    # The killed worker is replaced; the next query is answered.
    for _ in range(20):
        response = client.post(
            "/v2/query", json={"sql": "SELECT count(*) AS n FROM records_all", "min_timestamp": "2020-01-01T00:00:00Z"}
        )
        if response.status_code != 503:
            break
    assert response.json()["data"] == [{"n": 3_000}]


def test_memory_cap_fails_query_cleanly(client: httpx.Client) -> None:
    response = client.post(
        "/v2/query",
        json={
            "sql": "SELECT array_agg(a.attributes) FROM records a, records b",
            "min_timestamp": "2020-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 400
    assert "Resources exhausted" in response.json()["detail"]
