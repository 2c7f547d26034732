"""Issue 16 adversary: any ``Retry-After`` a service sends ends in a wait or a ``RateLimitError``, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from logfire_io import ConfigurationError, LogfireQueryClient, RateLimitError, Retry
from tests.client.conftest import Answer, Hostile

TOKEN = "pylf_v1_local_retryAfterTestToken"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),  # not RFC 9110's integer, but unambiguous
        ("²", None),  # str.isdigit() says yes, float() says no
        ("-3", None),
        ("1e400", None),
        ("nan", None),
        ("soon", None),
        ("Wed, 02 Dec 1900 14:30:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_16_any_retry_after_is_a_wait_or_none(hostile: Hostile, header: str, expected: object) -> None:
    assert _understood(hostile, header) == expected


@pytest.mark.parametrize("usegmt", [True, False], ids=["GMT", "-0000"])
def test_16_retry_after_as_an_http_date(hostile: Hostile, usegmt: bool) -> None:
    """``-0000`` (RFC 5322's "no zone information") parses as a naive datetime, which once raised a TypeError."""
    soon = datetime.now(UTC) + timedelta(seconds=30)
    header = format_datetime(soon if usegmt else soon.replace(tzinfo=None), usegmt=usegmt)
    assert _understood(hostile, header) == pytest.approx(30, abs=3)


def _understood(hostile: Hostile, header: str) -> float | None:
    """The ``retry_after`` of the error a 429 with ``header`` ends in."""
    hostile.serve(Answer(b'{"detail": "slow down"}', 429, {"content-type": "application/json", "retry-after": header}))
    policy = Retry(retries=1, max_retry_after=0.0)  # no waiting here: the error carries what was understood
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=policy) as client:
        with pytest.raises(RateLimitError) as caught:
            client.query_json("SELECT 1")
    assert "Hint:" in str(caught.value)
    return caught.value.retry_after


def test_16_a_retry_after_too_long_to_wait_says_so(hostile: Hostile) -> None:
    """Not 'the service may be down, or base_url wrong': the service answered, with a wait longer than allowed."""
    hostile.serve(Answer(b"{}", 429, {"content-type": "application/json", "retry-after": "3600"}))
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url) as client:
        with pytest.raises(RateLimitError, match=r"wait 3600 s") as caught:
            client.query_json("SELECT 1")
    assert "base_url" not in str(caught.value)
    assert "max_retry_after" in str(caught.value)
    assert len(hostile.requests) == 1


@pytest.mark.parametrize("name", ["backoff", "max_backoff", "max_retry_after"])
@pytest.mark.parametrize("value", [float("inf"), 1e23, 86_401])
def test_16_waits_longer_than_a_day_are_refused_when_the_policy_is_made(name: str, value: float) -> None:
    """An infinite wait once reached ``time.sleep(1e23)`` and a raw OverflowError, after a 429 had arrived."""
    with pytest.raises(ConfigurationError, match=f"`{name}` must be a number of seconds from 0 to 86,400"):
        Retry(**{name: value})
