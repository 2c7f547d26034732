"""Limits, checked early (issue 12): the token before the body, the body's size, the result's size, the deadline.

Oracles: a body is refused with 413 exactly when it is longer than ``max_body_bytes`` (and is otherwise
processed as usual); a result is refused with a 400 naming the cap when its data is larger than
``max_result_bytes``, and is otherwise exact; a request takes at most its deadline (plus scheduling slack).
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logfire_io.server import LocalLogfire

BODY_LIMIT = 4096
RESULT_CAP = 1 << 20
SINCE = "2020-01-01T00:00:00Z"
ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalLogfire]:
    with LocalLogfire(
        demo_rows=3_000, workers=2, deadline=1.5, max_body_bytes=BODY_LIMIT, max_result_bytes=RESULT_CAP
    ) as srv:
        yield srv


@pytest.fixture
def http(limited: LocalLogfire) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.base_url, headers={"authorization": limited.read_token}, timeout=30) as client:
        yield client


def _head_only(srv: LocalLogfire, headers: str) -> bytes:
    """Send request headers that announce a body, never send the body, and return the status line.

    The server must answer and then close the connection (the rest of the body is never read).
    """
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v2/query HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{headers}\r\n".encode()
        )
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_12_token_is_checked_before_the_body_is_read(limited: LocalLogfire) -> None:
    """A 300 MB body without a token is refused at once, unread (was: read whole, 1.3 GB RSS, then 401)."""
    assert _head_only(limited, "content-length: 300000000\r\n") == b"HTTP/1.1 401 Unauthorized"


def test_12_declared_oversized_body_is_413_without_reading_it(limited: LocalLogfire) -> None:
    status = _head_only(limited, f"authorization: {limited.read_token}\r\ncontent-length: 300000000\r\n")
    assert status.startswith(b"HTTP/1.1 413 ")


def test_12_chunked_oversized_body_is_413(http: httpx.Client) -> None:
    pieces = (b"x" * 1024 for _ in range(64))  # no content-length: sent chunked
    response = http.post("/v2/query", content=pieces)
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["detail"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(padding=st.integers(min_value=0, max_value=2 * BODY_LIMIT))
def test_body_is_refused_exactly_when_over_the_limit(http: httpx.Client, padding: int) -> None:
    body = orjson.dumps({"sql": "SELECT 1 AS one", "min_timestamp": SINCE, "pad": "x" * padding})
    response = http.post("/v2/query", content=body, headers={"content-type": "application/json"})
    if len(body) > BODY_LIMIT:
        assert response.status_code == 413
    else:
        assert response.status_code == 200, response.text
        assert response.json()["data"] == [{"one": 1}]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.one_of(st.integers(1, RESULT_CAP // 8), st.integers(2 * RESULT_CAP, 8 * RESULT_CAP)))
def test_result_over_the_cap_is_a_clear_400_and_under_it_is_exact(http: httpx.Client, size: int) -> None:
    response = http.post(
        "/v2/query",
        json={"sql": f"SELECT repeat('x', {size}) AS s", "min_timestamp": SINCE},
        headers={"accept": ARROW},
    )
    if size > RESULT_CAP:
        assert response.status_code == 400
        assert "max_result_bytes" in response.json()["detail"]
    else:
        assert response.status_code == 200, response.text
        assert pa.ipc.open_stream(response.content).read_all().column("s").to_pylist() == ["x" * size]


def test_12_encoded_body_over_the_cap_is_refused_too(http: httpx.Client) -> None:
    """Arrow data under the cap whose JSON is over it: JSON spells each control character as six (``\\u0001``)."""
    sql = f"SELECT repeat(chr(1), {RESULT_CAP // 3}) AS s"
    assert http.post("/v2/query", json={"sql": sql, "min_timestamp": SINCE}, headers={"accept": ARROW}).is_success
    response = http.post("/v2/query", json={"sql": sql, "min_timestamp": SINCE})
    assert response.status_code == 400
    assert "max_result_bytes" in response.json()["detail"]


def test_12_deadline_covers_encoding() -> None:
    """A fast query (0.1 s) whose JSON takes over a second to encode is stopped at the deadline (was: a late 200)."""
    with LocalLogfire(demo_rows=3_000, workers=1, deadline=0.5) as srv:
        started = time.monotonic()
        response = httpx.post(
            f"{srv.base_url}/v2/query",
            json={"sql": "SELECT range(0, 3000) AS r FROM records_all", "min_timestamp": SINCE, "limit": 10_000},
            headers={"authorization": srv.read_token},
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert "deadline of 0.5 s" in response.json()["detail"]
    assert elapsed < 0.5 + 4.0  # slack for a busy machine; encoding alone takes 1.4 s when it is idle


@pytest.mark.parametrize("explain", ["false", "true", 0, 1, None, [], {}])
def test_12_explain_must_be_a_boolean(http: httpx.Client, explain: object) -> None:
    """``"explain": "false"`` used to turn EXPLAIN on (``bool("false")``)."""
    response = http.post("/v2/query", json={"sql": "SELECT 1", "min_timestamp": SINCE, "explain": explain})
    assert response.status_code == 422
    assert "`explain`" in response.json()["detail"]


def test_explain_false_adds_no_plans(http: httpx.Client) -> None:
    body = http.post("/v2/query", json={"sql": "SELECT 1", "min_timestamp": SINCE, "explain": False}).json()
    assert "physical_plan" not in body


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_result_bytes": -1}, "max_result_bytes"),
        ({"deadline": 0}, "deadline"),
        ({"workers": 0}, "workers"),
        ({"gzip": "yes"}, "gzip"),
    ],
)
def test_limits_are_validated(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LocalLogfire(demo_rows=10, **kwargs)  # type: ignore[arg-type]


def test_arrow_to_loopback_is_not_gzipped_by_default(limited: LocalLogfire, http: httpx.Client) -> None:
    response = http.post(
        "/v2/query",
        json={"sql": "SELECT * FROM records_all", "min_timestamp": SINCE, "limit": 500},
        headers={"accept": "application/vnd.apache.arrow.stream", "accept-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert pa.ipc.open_stream(response.content).read_all().num_rows == 500


def test_gzip_true_compresses_arrow_and_it_decodes_to_the_same_table() -> None:
    with LocalLogfire(demo_rows=2_000, workers=1, gzip=True) as srv:
        headers = {"authorization": srv.read_token, "accept": "application/vnd.apache.arrow.stream"}
        body = {"sql": "SELECT * FROM records_all ORDER BY span_id", "min_timestamp": SINCE, "limit": 2_000}
        with httpx.stream(
            "POST", f"{srv.base_url}/v2/query", json=body, headers=headers | {"accept-encoding": "gzip"}
        ) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            raw = b"".join(zipped.iter_raw())
        plain = httpx.post(
            f"{srv.base_url}/v2/query", json=body, headers=headers | {"accept-encoding": "identity"}
        ).content
    assert pa.ipc.open_stream(gzip.decompress(raw)).read_all().equals(pa.ipc.open_stream(plain).read_all())
