"""Issue 16 adversary: a read that stops (Ctrl-C, an error) stops its paused and blocked slices at once.

Slices wait in worker threads (a ``Retry-After``, a retry's backoff, the limiter's pace, a socket); Ctrl-C
reaches only the main thread, which then waits for every worker before it returns. These reads meet 429s with
a 30 s ``Retry-After``, or answers that never finish, from a scripted server and must end in a second or two,
not after the pause or the read timeout.
"""

from __future__ import annotations

import gc
import signal
import socket
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from logfire_io import LogfireIOError, LogfireQueryClient, RateLimitError, Retry
from logfire_io._limiter import RequestLimiter
from logfire_io._read import ReadRequest, iter_tables
from logfire_io._slicing import Progress, ReadStats, Slice, SliceError, fetch_slices
from tests.client.conftest import Answer, Hostile

TOKEN = "pylf_v1_local_limiterStopsTestToken"
START = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = [Slice(START + timedelta(hours=i), START + timedelta(hours=i + 1)) for i in range(8)]


def _too_many(retry_after: str) -> Answer:
    return Answer(b'{"detail": "slow down"}', 429, {"content-type": "application/json", "retry-after": retry_after})


def _read(client: LogfireQueryClient) -> list[pa.Table]:
    """Every slice of PLAN through ``client``, four at a time; a caller's client, so nothing cuts the requests."""
    pieces = fetch_slices(
        PLAN,
        lambda piece: client.query_arrow("SELECT 1"),
        max_concurrency=4,
        stats=ReadStats(),
        progress=Progress(enabled=False),
        abort=lambda: None,
    )
    return [table for _, table in pieces]


def test_16_ctrl_c_ends_a_read_paused_on_retry_after(hostile: Hostile) -> None:
    hostile.serve(_too_many("30"))
    interrupt = threading.Timer(1.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=Retry(retries=3)) as client:
        started = time.monotonic()
        interrupt.start()
        with pytest.raises(KeyboardInterrupt):
            _read(client)
        took = time.monotonic() - started
    assert took < 5, f"Ctrl-C took {took:.1f} s to end a read paused for 30 s"


def test_16_a_retry_after_too_long_to_honour_pauses_no_other_slice(hostile: Hostile) -> None:
    """A 429 asking for an hour fails its slice at once; it paused every other slice of the read for the hour."""
    hostile.serve(_too_many("3600"))
    limiter = RequestLimiter()
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url) as client, limiter.applied():
        with pytest.raises(RateLimitError, match="asked to wait 3600 s"):
            client.query_arrow("SELECT 1")
    assert limiter.wait() < 1


def test_16_a_429_storm_ends_in_bounded_time(hostile: Hostile) -> None:
    """Every request is refused (Retry-After: 1): the read fails once the first slice's retries run out."""
    hostile.serve(_too_many("1"))
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=Retry(retries=2)) as client:
        started = time.monotonic()
        with pytest.raises(SliceError, match=r"HTTP 429"):
            _read(client)
        took = time.monotonic() - started
    assert took < 10, f"the read took {took:.1f} s to fail"
    assert len(hostile.requests) <= 4 * 3 + 4  # at most every slice in flight, each with its retries


def test_a_failed_slice_wakes_the_requests_blocked_on_their_sockets(hostile: Hostile) -> None:
    """Three slices' answers never finish, then the fourth gets a 401: the read fails at once, not after a timeout."""
    stalled = Answer(lambda: [b"never sent"], pause=60)
    hostile.serve(
        stalled, stalled, stalled, Answer(b'{"detail": "bad token"}', 401, {"content-type": "application/json"})
    )
    plan = tuple(Slice(START + timedelta(minutes=i), START + timedelta(minutes=i + 1)) for i in range(4))
    request = ReadRequest("SELECT span_id FROM records", slices=plan, max_concurrency=4, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        started = time.monotonic()
        with LogfireQueryClient(TOKEN, base_url=hostile.base_url) as client:
            with pytest.raises(LogfireIOError, match="401"):
                list(iter_tables(client, request, owns_client=True))
        took = time.monotonic() - started
        gc.collect()
    assert took < 10, f"the failed read took {took:.1f} s to stop its stalled requests"
    assert len(hostile.requests) == 4
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def _seconds_to_stop(base_url: str) -> float:
    """Seconds a read of PLAN from ``base_url`` (an owned client) takes to end after Ctrl-C, sent at 0.5 s."""
    request = ReadRequest("SELECT span_id FROM records", slices=tuple(PLAN), max_concurrency=4, progress=False)
    interrupt = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    with LogfireQueryClient(TOKEN, base_url=base_url) as client:
        started = time.monotonic()
        interrupt.start()
        with pytest.raises(KeyboardInterrupt):
            list(iter_tables(client, request, owns_client=True))
        return time.monotonic() - started


@pytest.mark.skipif(sys.platform != "linux", reason="Linux: a full accept queue hangs a connect")
def test_ctrl_c_ends_a_read_whose_requests_are_still_connecting() -> None:
    """The server's accept queue is full, so every connect hangs: Ctrl-C ends the read at once.

    A connecting socket was not yet known to the cut, so a stopped read waited for the 30 s connect timeout.
    """
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]  # fill the accept queue: later connects get no answer
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        try:
            took = _seconds_to_stop(f"http://127.0.0.1:{port}")
        finally:
            for sock in queued:
                sock.close()
    assert took < 5, f"Ctrl-C took {took:.1f} s to end a read whose requests were connecting"


def test_ctrl_c_ends_a_read_whose_requests_are_still_shaking_hands() -> None:
    """The server accepts but never answers the TLS handshake: Ctrl-C ends the read at once.

    The handshake's socket was out of the cut's reach (the TLS wrapper takes the descriptor over from the plain
    socket, which the cut then shut down in vain), so a stopped read waited for the 30 s connect timeout.
    """
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # connections are queued, never accepted: no handshake answer ever comes
        took = _seconds_to_stop(f"https://127.0.0.1:{listening.getsockname()[1]}")
    assert took < 5, f"Ctrl-C took {took:.1f} s to end a read whose requests were shaking hands"
