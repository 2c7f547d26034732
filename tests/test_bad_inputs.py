"""Bad input, one row each: the error class, and a message that says what was wrong and what to do."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest

import logfire_io
from logfire_io import (
    AuthenticationError,
    ConfigurationError,
    QueryExecutionError,
    TransportError,
    UnexpectedResponseError,
)
from logfire_io.server import LocalLogfire


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("empty SQL", {"sql": "  "}, ConfigurationError, "`sql` must be a non-empty SQL query"),
    ("invalid SQL", {"sql": "SELEC * FRM records"}, QueryExecutionError, "fix the SQL"),
    ("unknown column", {"sql": "SELECT nope FROM records"}, QueryExecutionError, "No field named nope"),
    ("wrong token", {"read_token": "pylf_v1_local_wrong"}, AuthenticationError, "read token was refused"),
    ("no token", {"read_token": None}, ConfigurationError, "LOGFIRE_READ_TOKEN"),
    ("unknown region", {"read_token": "pylf_v1_mars_abc", "base_url": None}, ConfigurationError, "pass `base_url=`"),
    (
        "min after max",
        {"min_timestamp": datetime(2026, 1, 2, tzinfo=UTC), "max_timestamp": datetime(2026, 1, 1, tzinfo=UTC)},
        ConfigurationError,
        "is after `max_timestamp`",
    ),
    ("limit 0", {"limit": 0}, ConfigurationError, "`limit` must be a positive integer"),
    ("negative limit", {"limit": -3}, ConfigurationError, "`limit` must be a positive integer"),
    (
        "slices on a non-sliceable query",
        {"sql": "SELECT count(*) FROM records", "slices": 4},
        ConfigurationError,
        "cannot be split by time because it uses an aggregate",
    ),
    ("zero slices", {"slices": 0}, ConfigurationError, "`slices` must be a positive int"),
    (
        "unknown JSON column",
        {"json_columns": ["nope"]},
        ConfigurationError,
        "`json_columns` names columns the result does not have",
    ),
    (
        "bad max_concurrency",
        {"max_concurrency": 0},
        ConfigurationError,
        "`max_concurrency` must be an integer from 1 to 64",
    ),
    ("string timestamp", {"min_timestamp": "2026-01-01"}, ConfigurationError, "`min_timestamp` must be a datetime"),
    ("unreachable server", {"base_url": f"http://127.0.0.1:{_free_port()}"}, TransportError, "cannot reach"),
    ("base URL without a scheme", {"base_url": "localhost:8000"}, ConfigurationError, "must be the Logfire API root"),
    ("base URL of another scheme", {"base_url": "ftp://x"}, ConfigurationError, "must be the Logfire API root"),
    ("oversize limit", {"limit": 2**70}, ConfigurationError, "`limit` must be a positive integer"),
    ("token with a space", {"read_token": "pylf_v1 x"}, ConfigurationError, "has a space, control or non-ASCII"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(server: LocalLogfire, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    arguments: dict[str, Any] = {
        "sql": "SELECT span_id, attributes FROM records",
        "read_token": server.read_token,
        "base_url": server.base_url,
        "limit": 10,
    } | kwargs
    sql = arguments.pop("sql")
    with pytest.raises(error) as caught:
        logfire_io.read_logfire(sql, **arguments)
    assert message in str(caught.value)
    assert server.read_token not in str(caught.value)


def test_limit_above_the_cap_per_request(server: LocalLogfire) -> None:
    with logfire_io.LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        with pytest.raises(ConfigurationError, match="from 1 to 10,000"):
            client.query_arrow("SELECT 1", limit=10_001)


def test_naive_datetimes_are_utc(server: LocalLogfire) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url}
    sql = "SELECT span_id FROM records_all"
    naive = logfire_io.read_logfire(
        sql, min_timestamp=datetime(2025, 12, 31, 6), max_timestamp=datetime(2025, 12, 31, 7), **kwargs
    )
    aware = logfire_io.read_logfire(
        sql,
        min_timestamp=datetime(2025, 12, 31, 6, tzinfo=UTC),
        max_timestamp=datetime(2025, 12, 31, 7, tzinfo=UTC),
        **kwargs,
    )
    assert naive.height > 0
    assert sorted(naive["span_id"]) == sorted(aware["span_id"])


def test_html_base_url() -> None:
    import threading
    from http.server import ThreadingHTTPServer

    from tests.client.test_errors import _HtmlHandler  # the same small HTML server

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        with pytest.raises(UnexpectedResponseError, match=r"(?s)HTTP 404.*Welcome to Logfire.*base_url"):
            logfire_io.read_logfire("SELECT 1", read_token="t", base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_13_a_lone_surrogate_is_a_configuration_error() -> None:
    for kwargs in (
        {"sql": "SELECT '\ud800'"},
        {"sql": "SELECT 1", "timezone": "\ud800"},
        {"sql": "SELECT 1", "environment": ["\ud800"]},
    ):
        with pytest.raises(logfire_io.ConfigurationError, match="lone surrogate"):
            logfire_io.read_logfire_arrow(read_token="pylf_v1_us_" + "x" * 40, base_url="http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]
