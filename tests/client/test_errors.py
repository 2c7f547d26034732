"""Error classes from real server responses, retries on faults, and token hygiene."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from logfire_io import (
    AsyncLogfireQueryClient,
    AuthenticationError,
    ConfigurationError,
    IncompleteResponseError,
    LogfireQueryClient,
    QueryExecutionError,
    QueryRequestError,
    RateLimitError,
    Retry,
    TransportError,
    UnexpectedResponseError,
)
from logfire_io.server import LocalLogfire

SINCE = datetime(2020, 1, 1, tzinfo=UTC)
FAST = Retry(retries=3, backoff=0.01)


@pytest.fixture(scope="module")
def faulty() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=3_000, workers=1, read_token="pylf_v1_local_s3cr3tT0k3nValue") as srv:
        yield srv


def _client(srv: LocalLogfire, **kwargs: object) -> LogfireQueryClient:
    return LogfireQueryClient(srv.read_token, base_url=srv.base_url, retries=kwargs.pop("retries", FAST), **kwargs)  # type: ignore[arg-type]


def test_bad_sql_carries_server_detail(faulty: LocalLogfire) -> None:
    with _client(faulty) as client, pytest.raises(QueryExecutionError) as caught:
        client.query_arrow("SELECT no_such_column FROM records")
    assert caught.value.status_code == 400
    assert "no_such_column" in caught.value.detail
    assert "no_such_column" in str(caught.value)
    assert "Hint" in str(caught.value)


def test_invalid_request_names_the_field(faulty: LocalLogfire) -> None:
    with _client(faulty) as client, pytest.raises(QueryRequestError, match="`timezone`") as caught:
        client.query_json_rows("SELECT 1", timezone="Mars/Olympus")
    assert caught.value.status_code == 422


def test_wrong_token_is_refused(faulty: LocalLogfire) -> None:
    with LogfireQueryClient("pylf_v1_local_wrongtoken", base_url=faulty.base_url) as client:
        with pytest.raises(AuthenticationError, match="read token was refused"):
            client.query_csv("SELECT 1")


def test_429_with_retry_after_is_retried(faulty: LocalLogfire) -> None:
    faulty.faults.push("429")
    with _client(faulty, retries=Retry(retries=1, max_retry_after=5)) as client:
        assert client.query_json_rows("SELECT 1 AS x")["rows"] == [{"x": 1}]


def test_429_carries_retry_after_when_retries_run_out(faulty: LocalLogfire) -> None:
    faulty.faults.push("429")
    with _client(faulty, retries=0) as client, pytest.raises(RateLimitError) as caught:
        client.query_json_rows("SELECT 1")
    assert caught.value.retry_after == 1.0
    assert caught.value.status_code == 429


@pytest.mark.parametrize("status", ["502", "503"])
def test_gateway_errors_are_retried(faulty: LocalLogfire, status: str) -> None:
    faulty.faults.push(status, times=2)
    before = len(faulty.queries)
    with _client(faulty) as client:
        assert client.query_arrow("SELECT 1 AS x").column("x").to_pylist() == [1]
    assert len(faulty.queries) == before + 1  # status faults are answered before the query is logged


@pytest.mark.parametrize("status", ["500", "401"])
def test_non_retryable_statuses_raise_at_once(faulty: LocalLogfire, status: str) -> None:
    faulty.faults.push(status)
    with _client(faulty) as client, pytest.raises((UnexpectedResponseError, AuthenticationError)) as caught:
        client.query_arrow("SELECT 1")
    assert caught.value.status_code == int(status)  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", ["truncate", "reset"])
def test_cut_arrow_stream_is_refetched(faulty: LocalLogfire, fault: str) -> None:
    faulty.faults.push(fault)
    with _client(faulty) as client:
        table = client.query_arrow("SELECT * FROM records_all", limit=3_000)
    assert table.num_rows == 3_000


def test_cut_arrow_stream_without_retries_is_an_error(faulty: LocalLogfire) -> None:
    faulty.faults.push("truncate")
    with _client(faulty, retries=0) as client, pytest.raises(IncompleteResponseError, match="end-of-stream"):
        client.query_arrow("SELECT * FROM records_all", limit=3_000)


@pytest.mark.parametrize("fault", ["truncate", "reset"])
def test_cut_json_body_is_refetched_or_explained(faulty: LocalLogfire, fault: str) -> None:
    faulty.faults.push(fault)
    with _client(faulty) as client:
        if fault == "reset":
            assert len(client.query_json_rows("SELECT span_id FROM records_all", limit=3_000)["rows"]) == 3_000
        else:  # a body that ends cleanly but early is not valid JSON: say so, never return part of it
            with pytest.raises(UnexpectedResponseError, match="expected JSON"):
                client.query_json_rows("SELECT span_id FROM records_all", limit=3_000)


def test_async_client_retries_and_maps_errors(faulty: LocalLogfire) -> None:
    async def run() -> None:
        faulty.faults.push("503")
        faulty.faults.push("truncate")
        async with AsyncLogfireQueryClient(faulty.read_token, base_url=faulty.base_url, retries=FAST) as client:
            assert (await client.query_arrow("SELECT * FROM records_all", limit=3_000)).num_rows == 3_000
            with pytest.raises(QueryExecutionError):
                await client.query_json("SELECT nope")

    anyio.run(run)


def test_unreachable_server_is_a_transport_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with LogfireQueryClient(
        "tok", base_url=f"http://127.0.0.1:{port}", retries=Retry(retries=1, backoff=0.01)
    ) as client:
        with pytest.raises(TransportError, match="cannot reach"):
            client.query_arrow("SELECT 1")


class _HtmlHandler(BaseHTTPRequestHandler):
    def _html(self) -> None:
        status = 200 if self.path.startswith("/ok") else 404
        body = b"<!doctype html><html><body><h1>Welcome to Logfire</h1></body></html>"
        self.send_response(status)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _html

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def html_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_html_404_quotes_status_and_body(html_server: str) -> None:
    with LogfireQueryClient("tok", base_url=html_server, api_version="v2") as client:
        with pytest.raises(UnexpectedResponseError, match=r"HTTP 404.*Welcome to Logfire") as caught:
            client.query_arrow("SELECT 1")
    assert caught.value.status_code == 404


@pytest.mark.parametrize("method", ["query_json_rows", "query_arrow"])
def test_html_200_is_not_taken_for_data(html_server: str, method: str) -> None:
    with LogfireQueryClient("tok", base_url=f"{html_server}/ok") as client:
        with pytest.raises(UnexpectedResponseError, match="text/html") as caught:
            getattr(client, method)("SELECT 1")
    assert "base_url" in str(caught.value)


def test_token_never_leaks(faulty: LocalLogfire, caplog: pytest.LogCaptureFixture) -> None:
    token = faulty.read_token
    caplog.set_level(logging.DEBUG)
    messages = []
    with _client(faulty, retries=Retry(retries=1, backoff=0.01)) as client:
        messages.append(repr(client))
        for sql in ("SELECT nope", f'SELECT "{token}" FROM records'):
            with pytest.raises(QueryExecutionError) as caught:
                client.query_arrow(sql)
            messages.append(str(caught.value))
        faulty.faults.push("503", times=2)
        with pytest.raises(UnexpectedResponseError) as unexpected:
            client.query_arrow("SELECT 1")
        messages.append(str(unexpected.value))
    messages.extend(record.getMessage() for record in caplog.records)
    assert all(token not in m for m in messages)
    assert any("<read token>" in m for m in messages)  # the echoed token was scrubbed, not dropped silently


def test_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LogfireQueryClient("pylf_v1_us_abc").base_url == "https://logfire-us.pydantic.dev"
    assert LogfireQueryClient("pylf_v1_eu_abc").base_url == "https://logfire-eu.pydantic.dev"
    assert LogfireQueryClient("legacytokenwithoutregion").base_url == "https://logfire-us.pydantic.dev"
    with pytest.raises(ConfigurationError, match="pass `base_url=`"):
        LogfireQueryClient("pylf_v1_local_abc")
    monkeypatch.setenv("LOGFIRE_BASE_URL", "http://localhost:1234")
    assert LogfireQueryClient("pylf_v1_local_abc").base_url == "http://localhost:1234"


def test_path_prefix_is_kept() -> None:
    from logfire_io._protocol import Query

    with LogfireQueryClient("tok", base_url="http://proxy.example/logfire/") as client:
        assert client._request(Query("SELECT 1"), "arrow").url.path == "/logfire/v2/query"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "`limit`"),
        ({"limit": 10_001}, "`limit`"),
        ({"limit": -5}, "`limit`"),
        ({"min_timestamp": datetime(2025, 1, 2), "max_timestamp": datetime(2025, 1, 1)}, "after `max_timestamp`"),
        ({"min_timestamp": "2025-01-01"}, "must be a datetime"),
    ],
)
def test_bad_arguments_fail_before_any_request(faulty: LocalLogfire, kwargs: dict, match: str) -> None:
    before = len(faulty.queries)
    with _client(faulty) as client, pytest.raises(ConfigurationError, match=match):
        client.query_arrow("SELECT 1", **kwargs)
    assert len(faulty.queries) == before


def test_empty_sql_is_refused(faulty: LocalLogfire) -> None:
    with _client(faulty) as client, pytest.raises(ConfigurationError, match="`sql`"):
        client.query_arrow("   ")


def test_retry_policy_decisions() -> None:
    from logfire_io import RateLimitError
    from logfire_io._exceptions import QueryHTTPError

    def http_error(cls: type, status: int, **extra: object) -> QueryHTTPError:
        return cls("x", status_code=status, detail="x", request=None, response=None, **extra)  # type: ignore[arg-type]

    policy = Retry(retries=2, backoff=0.1, max_retry_after=10)
    assert policy.delay(http_error(RateLimitError, 429, retry_after=3.0), 0) == 3.0
    assert policy.delay(http_error(RateLimitError, 429, retry_after=None), 0) is None  # a quota: raise at once
    assert policy.delay(http_error(RateLimitError, 429, retry_after=60.0), 0) is None  # longer than allowed
    assert 0 <= policy.delay(http_error(UnexpectedResponseError, 503), 1) <= 0.2  # type: ignore[operator]
    assert policy.delay(http_error(UnexpectedResponseError, 503), 2) is None  # retries used up
    for cls, status in (
        (QueryExecutionError, 400),
        (AuthenticationError, 401),
        (AuthenticationError, 403),
        (QueryRequestError, 422),
        (UnexpectedResponseError, 500),
    ):
        assert policy.delay(http_error(cls, status), 0) is None
    assert policy.delay(TransportError("reset"), 0) is not None
    assert policy.delay(IncompleteResponseError("cut"), 0) is not None
