"""Shared fixtures: one local Logfire server for the session, over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import settings

from logfire_io.server import LocalLogfire

FIXTURES = Path(__file__).parent / "fixtures"
DEMO_END = datetime(2026, 1, 1, tzinfo=UTC)
"""The fixed end of the session server's synthetic window, so every run sees the same rows."""
DEMO_ROWS = 20_000

# Hypothesis's per-example deadline measures the machine, not the code: on two shared cores a 200 ms example
# takes 400 ms. Speed lives in benchmarks/, so no property test has a deadline.
settings.register_profile("logfire-io", deadline=None)
settings.load_profile("logfire-io")


def cassette(name: str) -> list[dict[str, Any]]:
    """The interactions of a recorded Logfire cassette in ``tests/fixtures/wire``."""
    return yaml.safe_load((FIXTURES / "wire" / name).read_text())["interactions"]


def logfire_queries() -> list[dict[str, str]]:
    return json.loads((FIXTURES / "logfire_queries.json").read_text())


@pytest.fixture(scope="session")
def server() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=DEMO_ROWS, demo_end=DEMO_END, seed=7) as srv:
        yield srv


@pytest.fixture
def http(server: LocalLogfire) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"authorization": server.read_token}, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGFIRE_READ_TOKEN", "LOGFIRE_BASE_URL", "LOGFIRE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
