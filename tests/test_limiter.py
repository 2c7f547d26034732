"""Issue 16 item 4: one limiter per read; a 429 pauses every slice, and the read paces itself under a rate limit."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest

from logfire_io import read_logfire_arrow
from logfire_io._limiter import RequestLimiter
from logfire_io._slicing import Progress, ReadStats
from logfire_io.server import LocalLogfire

_SQL = "SELECT span_id FROM records_all"


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=20_000, workers=2, rate_limit=8) as srv:
        yield srv


def _read(srv: LocalLogfire, **kwargs: object) -> int:
    table = read_logfire_arrow(_SQL, read_token=srv.read_token, base_url=srv.base_url, slices=24, **kwargs)
    assert len(table.column("span_id").unique()) == table.num_rows  # no row twice
    return table.num_rows


def test_a_429_pauses_every_slice() -> None:
    """One injected 429 (Retry-After: 1) mid-read: no slice sends anything until it has passed.

    Without a shared limiter only the slice that got the 429 waits, and the slices ahead of it in the queue
    complete and are replaced by new requests. The server logs each request after its 0.6 s latency, so a request
    sent after the 429 shows 0.6 s later; requests in flight when it came show before ``t + 0.6``.
    """
    with LocalLogfire(demo_rows=20_000, workers=2, latency_ms=600) as srv:
        srv.faults.push("429", after=12)
        rows = _read(srv, max_concurrency=8)
        arrivals = [d.at for d in srv.rate_log]
        assert rows == srv.num_records
    limited_at = arrivals[12]
    during = [round(at - limited_at, 2) for at in arrivals if limited_at + 0.7 < at < limited_at + 1.5]
    assert not during, f"requests arrived {during} s after the 429, during its Retry-After"
    assert any(at > limited_at + 1.5 for at in arrivals)  # the read went on after the pause


def test_rate_limited_read_is_exact_and_paced(limited: LocalLogfire) -> None:
    """Two reads back to back (the second meets an empty bucket): each meets the limit once, not per slice.

    Without the limiter each slice finds the limit by itself: 10 429s in 35 requests for the second read.
    """
    for _ in range(2):
        first = len(limited.rate_log)
        rows = _read(limited, max_concurrency=4)
        refused = [d for d in limited.rate_log[first:] if d.retry_after]
        assert rows == limited.num_records
        assert 1 <= len(refused) <= 4  # one overload, met by at most the requests in flight


def test_progress_shows_the_pace() -> None:
    limiter = RequestLimiter()
    stream = io.StringIO()
    assert limiter.describe() == ""
    limiter.accepted()
    limiter.rate_limited(1.0, time.monotonic())
    Progress(enabled=True, stream=stream).update(ReadStats(), limiter)
    assert "paced at 0.7 req/s after 1 x 429" in stream.getvalue()


def test_aimd() -> None:
    """Cut by 0.7 once per overload (not again for requests sent before the cut), grown by 1/rate per answer."""
    limiter = RequestLimiter()
    for _ in range(10):
        limiter.accepted()
    sent = time.monotonic()
    limiter.rate_limited(0.0, sent)
    assert limiter.rate == pytest.approx(7.0)
    limiter.rate_limited(0.0, sent)  # in flight when the first came: the same overload
    assert limiter.rate == pytest.approx(7.0)
    assert limiter.limited == 2
    limiter.accepted()
    assert limiter.rate == pytest.approx(7.0 + 1 / 7.0)
    time.sleep(0.01)
    limiter.rate_limited(0.0, time.monotonic())  # sent after the cut: a new overload
    assert limiter.rate == pytest.approx((7.0 + 1 / 7.0) * 0.7)


def test_pause_and_pacing_waits() -> None:
    limiter = RequestLimiter()
    assert limiter.wait() == 0  # no pacing before the first 429
    limiter.rate_limited(0.5, time.monotonic())
    assert limiter.rate == pytest.approx(0.7)  # nothing accepted yet: 1 request/s assumed, cut by 0.7
    first, second = limiter.wait(), limiter.wait()
    assert first == pytest.approx(0.5, abs=0.05)
    assert second - first == pytest.approx(1 / limiter.rate, abs=0.05)
