"""A read that stops early while slice requests are in flight leaves no socket to the garbage collector.

Closing the client cuts the requests in flight, but a connection the pool was opening at that moment used to
be dropped unclosed (a ResourceWarning, now and then). The race is timing-dependent, so each test stops many
reads, in the ways a read can stop (a slice's error, the consumer stopping), and checks after each.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from logfire_io import LogfireIOError, LogfireQueryClient
from logfire_io._read import ReadRequest, iter_tables
from logfire_io.server import LocalLogfire
from tests.helpers import make_records

BASE = datetime(2026, 2, 1, tzinfo=UTC)
END = BASE + timedelta(seconds=2)
ROUNDS = int(os.environ.get("LOGFIRE_IO_STOP_ROUNDS", "12"))  # more for a long run
BUDGET_S = 4.0 * ROUNDS


@pytest.fixture(scope="module")
def server() -> Iterator[LocalLogfire]:
    with LocalLogfire(records=make_records([BASE + timedelta(milliseconds=i) for i in range(2_000)])) as srv:
        yield srv
        srv.faults.configure(None)


def _request() -> ReadRequest:
    return ReadRequest("SELECT span_id FROM records_all", BASE, END, slices=16, max_concurrency=8, progress=False)


def _unclosed_sockets(stop_one_read: Callable[[int], None]) -> list[str]:
    """Stop reads until the budget runs out; the sockets the collector found unclosed after them."""
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for attempt in range(ROUNDS):
            stop_one_read(attempt)
            gc.collect()
            if time.monotonic() - started > BUDGET_S:
                break
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]


def _owned_client(server: LocalLogfire) -> LogfireQueryClient:
    return LogfireQueryClient(server.read_token, base_url=server.base_url)


def test_a_failed_slice_leaves_no_socket(server: LocalLogfire) -> None:
    def stop(attempt: int) -> None:
        server.faults.push("401", after=attempt % 3)  # not retried: the read stops while other slices are in flight
        with _owned_client(server) as client, pytest.raises(LogfireIOError):
            list(iter_tables(client, _request(), owns_client=True))
        server.faults.configure(None)

    assert _unclosed_sockets(stop) == []


def test_a_consumer_stopping_leaves_no_socket(server: LocalLogfire) -> None:
    def stop(_: int) -> None:
        with _owned_client(server) as client:
            pieces = iter_tables(client, _request(), owns_client=True)
            next(pieces)
            pieces.close()

    assert _unclosed_sockets(stop) == []
