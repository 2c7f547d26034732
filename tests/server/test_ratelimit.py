"""The local server's per-token rate limit: a burst of one second's worth passes, then 429 with Retry-After."""

from __future__ import annotations

import time

import httpx
import pytest

from logfire_io.server import LocalLogfire
from logfire_io.server.ratelimit import RateLimiter


def test_burst_passes_then_429_until_refilled() -> None:
    limiter = RateLimiter(4)
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.take("a") == 1  # a quarter second until one more, rounded up to whole seconds
    assert limiter.take("b") == 0  # per token
    time.sleep(0.3)
    assert limiter.take("a") == 0
    assert [d.retry_after for d in limiter.log] == [0, 0, 0, 0, 1, 0, 0]
    assert all(a.at <= b.at for a, b in zip(limiter.log, list(limiter.log)[1:], strict=False))


def test_no_limit_allows_everything() -> None:
    limiter = RateLimiter(None)
    assert all(limiter.take("a") == 0 for _ in range(1000))
    assert len(limiter.log) == 1000  # every request is logged, for tests that time them


@pytest.mark.parametrize("rate", [-1.0, float("nan")])
def test_bad_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimiter(rate)


def test_local_server_limits_and_logs() -> None:
    with LocalLogfire(demo_rows=100, workers=1, rate_limit=3) as srv:
        headers = {"authorization": srv.read_token}
        body = {"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z"}
        with httpx.Client(base_url=srv.base_url, headers=headers) as http:
            statuses = [http.post("/v2/query", json=body).status_code for _ in range(5)]
            time.sleep(1.0)
            later = http.post("/v2/query", json=body).status_code
        log = srv.rate_log
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert later == 200
    assert [d.retry_after > 0 for d in log] == [s == 429 for s in [*statuses, later]]
