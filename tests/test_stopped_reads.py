"""A read that stops early while slice requests are in flight stops them at once and leaves no socket behind.

Closing the client used to be the cut, and it was not one: a thread blocked on a socket closed under it is not
woken, so a stopped read waited for its read timeout (up to 30 s, found stopping reads in a loop, once its
socket's descriptor had been reused), and a connection the pool was opening at that moment was dropped unclosed
(a ResourceWarning, now and then). The races are timing-dependent, so the loop tests stop many reads, in the
ways a read can stop (a slice's error, the consumer stopping), and check after each (the wake-up is also tested
deterministically, in tests/client/test_limiter_stops.py).
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


def _request(sql: str = "SELECT span_id FROM records_all") -> ReadRequest:
    return ReadRequest(sql, BASE, END, slices=16, max_concurrency=8, progress=False)


def _failing_from(when: datetime) -> str:
    """A query whose slices from ``when`` on fail (a division by zero), so the read stops while others run.

    The failure is in the SQL, not a queued server fault, which a request of the last read that reached the
    server after it was stopped could take instead.
    """
    return (
        f"SELECT span_id, 1 / (CASE WHEN start_timestamp >= '{when.isoformat()}' THEN 0 ELSE 1 END) AS one "
        "FROM records_all"
    )


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
        sql = _failing_from(BASE + timedelta(milliseconds=125 * (1 + attempt % 3)))  # a 400 is not retried
        with _owned_client(server) as client, pytest.raises(LogfireIOError, match="Divide by zero"):
            list(iter_tables(client, _request(sql), owns_client=True))

    assert _unclosed_sockets(stop) == []


def test_a_consumer_stopping_leaves_no_socket(server: LocalLogfire) -> None:
    def stop(_: int) -> None:
        with _owned_client(server) as client:
            pieces = iter_tables(client, _request(), owns_client=True)
            next(pieces)
            pieces.close()

    assert _unclosed_sockets(stop) == []
