"""A server over the corpus table, shared by the dialect, JSON and function corpus tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from logfire_io.server import LocalLogfire
from tests.server.corpus_data import corpus_records


@pytest.fixture(scope="session")
def corpus_http() -> Iterator[httpx.Client]:
    with (
        LocalLogfire(records=corpus_records(), workers=1) as srv,
        httpx.Client(base_url=srv.base_url, headers={"authorization": srv.read_token}, timeout=60) as client,
    ):
        yield client
