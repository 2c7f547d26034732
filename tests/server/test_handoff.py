"""A large answer written by its worker straight into the client's socket (issue 12, engine-speed answers).

The connection is lent to the worker and taken back: it must stay usable (keep-alive), and every guarantee of a
relayed answer must hold while the worker holds it: a client that goes away frees the worker at once, the
deadline cuts a client that stops reading, a worker killed part-way is replaced and the cut is visible.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h11
import orjson
import pyarrow as pa
import pytest

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server import LocalLogfire, synth_metrics, synth_records
from logfire_io.server._worker import _encoded, answer
from logfire_io.server.engine import Engine, QueryError, QuerySpec
from logfire_io.server.store import Store
from logfire_io.server.workers import HANDOFF_MIN_BYTES, BodyFormat, WorkerRequest
from tests.server.helpers import ARROW, assert_prompt_select_1, wait_until_full

BULK = "SELECT * FROM records_all ORDER BY start_timestamp, span_id"
"""With ``limit`` 10,000 over these rows, an Arrow answer of about 10 MB: far more than a socket buffers. In a
fixed order: without one, the engine's partitions race to fill a ``LIMIT``, and two runs may differ."""


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=20_000, workers=2, deadline=4) as server:
        yield server


def _post(conn: http.client.HTTPConnection, srv: LocalLogfire, sql: str, accept: str) -> http.client.HTTPResponse:
    body = orjson.dumps({"sql": sql, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000})
    conn.request("POST", "/v2/query", body, {"authorization": srv.read_token, "accept": accept})
    return conn.getresponse()


def _stalled_client(srv: LocalLogfire) -> socket.socket:
    """A bulk Arrow request from a client that reads only the headers: its worker ends up blocked writing."""
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    body = orjson.dumps({"sql": BULK, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000})
    head = (
        f"POST /v2/query HTTP/1.1\r\nhost: {host}\r\nauthorization: {srv.read_token}\r\naccept: {ARROW}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    assert b"transfer-encoding: chunked" in sock.recv(1024).lower()  # handed off: no content-length
    deadline = time.monotonic() + 10
    while not srv.worker_pids.busy:  # the worker holds the socket until the body is written
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    pieces = []
    while piece := sock.recv(1 << 20):
        pieces.append(piece)
    return b"".join(pieces)


def test_12_connection_is_kept_alive_across_handed_off_answers(srv: LocalLogfire) -> None:
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    sockets = set()
    for sql, accept in [(BULK, ARROW), ("SELECT 1 AS one", "application/json"), (BULK, ARROW), (BULK, "text/csv")]:
        response = _post(conn, srv, sql, accept)
        data = response.read()
        assert response.status == 200, data[:200]
        sockets.add(id(conn.sock))
        if sql == BULK:
            assert response.getheader("transfer-encoding") == "chunked"  # written by the worker
            assert len(data) >= HANDOFF_MIN_BYTES
        if accept == ARROW:
            assert pa.ipc.open_stream(data).read_all().num_rows == 10_000
        elif accept == "text/csv":
            assert data.count(b"\n") > 10_000  # a header and 10,000 rows (some values hold line breaks)
        else:
            assert response.getheader("content-length") == str(len(data))  # small: relayed
            assert orjson.loads(data)["data"] == [{"one": 1}]
    assert len(sockets) == 1  # one connection throughout
    conn.close()
    wait_until_full(srv)


def _responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read ``count`` HTTP/1.1 responses from ``sock``: each one's status and decoded body."""
    conn = h11.Connection(h11.CLIENT)
    sock.settimeout(30)
    out = []
    for _ in range(count):
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
        conn.send(h11.EndOfMessage())
        status, pieces = 0, []
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(1 << 20))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                pieces.append(event.data)
        out.append((status, b"".join(pieces)))
        conn.start_next_cycle()
    return out


def test_12_pipelined_requests_around_handed_off_answers_each_get_their_exact_answer(srv: LocalLogfire) -> None:
    """Requests sent back to back before any answer is read: the worker writing into the socket must not
    interleave with the answers the HTTP process writes, before or after it."""
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    asked = [(BULK, ARROW), ("SELECT 1 AS one", "application/json"), (BULK, "text/csv"), (BULK, ARROW)]
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    expected = [(200, _post(conn, srv, sql, accept).read()) for sql, accept in asked]  # one at a time
    conn.close()
    requests = []
    for sql, accept in asked:
        body = orjson.dumps({"sql": sql, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000})
        head = (
            f"POST /v2/query HTTP/1.1\r\nhost: {host}\r\nauthorization: {srv.read_token}\r\naccept: {accept}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"".join(requests))
        assert _responses(sock, len(asked)) == expected
    wait_until_full(srv)


def test_12_http_1_0_client_gets_a_relayed_answer(srv: LocalLogfire) -> None:
    """HTTP/1.0 has no chunks: the answer is relayed with a length, as before."""
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    body = orjson.dumps({"sql": BULK, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000})
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"POST /v2/query HTTP/1.0\r\nauthorization: {srv.read_token}\r\naccept: {ARROW}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        reply = _read_to_end(sock)
    head_bytes, _, payload = reply.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(payload)}".encode() in head_bytes.lower()
    assert pa.ipc.open_stream(payload).read_all().num_rows == 10_000


def test_12_client_gone_during_a_handed_off_answer_frees_its_worker_at_once(srv: LocalLogfire) -> None:
    for _ in range(srv.workers + 1):  # more than the pool: a leaked worker would show
        sock = _stalled_client(srv)
        sock.close()
        started = time.monotonic()
        wait_until_full(srv)
        assert time.monotonic() - started < 3  # well before the 4 s deadline
    assert_prompt_select_1(srv)


def test_12_deadline_cuts_a_client_that_stops_reading_a_handed_off_answer(srv: LocalLogfire) -> None:
    """The worker is freed at the deadline, and the client learns of the cut then, not after draining megabytes
    the server's kernel had buffered.

    Was: the connection was closed gracefully, so 2.8 MB queued in the socket still reached the client after the
    deadline (for a slow link: minutes of a body that is cut anyway). Now the cut is a reset.
    """
    sock = _stalled_client(srv)
    time.sleep(4.5)  # past the deadline
    sock.settimeout(10)
    late = 0
    with contextlib.suppress(ConnectionResetError):
        while piece := sock.recv(1 << 20):
            late += len(piece)
    sock.close()
    assert late < 256 << 10  # at most what the client's own receive buffer held
    wait_until_full(srv)
    assert_prompt_select_1(srv)


def test_12_worker_killed_during_a_handed_off_answer_is_a_cut_and_is_replaced(srv: LocalLogfire) -> None:
    sock = _stalled_client(srv)
    (busy,) = srv.worker_pids.busy
    os.kill(busy, signal.SIGKILL)
    reply = _read_to_end(sock)  # ends soon after the kill, not at the deadline
    sock.close()
    assert not reply.endswith(b"0\r\n\r\n")
    wait_until_full(srv)
    assert busy not in srv.worker_pids.idle
    assert_prompt_select_1(srv)


def test_12_offer_declined_when_the_client_left_during_the_query_keeps_the_worker(srv: LocalLogfire) -> None:
    """The client goes before the answer is ready: the worker's offer is declined and the worker reused."""
    wait_until_full(srv)
    before = set(srv.worker_pids.idle)
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    for _ in range(3):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = orjson.dumps({"sql": BULK, "min_timestamp": "2000-01-01T00:00:00Z", "limit": 10_000})
        conn.request("POST", "/v2/query", body, {"authorization": srv.read_token, "accept": ARROW})
        conn.close()
        wait_until_full(srv)
    assert set(srv.worker_pids.idle) == before
    assert_prompt_select_1(srv)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp), {"records_all": RECORDS_SCHEMA, "metrics": METRICS_SCHEMA})
        store.put_loaded("records_all", synth_records(5_000, end=end, span=timedelta(days=1)))
        store.put_loaded("metrics", synth_metrics(500, end=end, span=timedelta(days=1)))
        yield Engine({name: str(store.directory(name)) for name in ("records_all", "metrics")}, memory_limit=1 << 30)
        store.close()


@pytest.mark.parametrize(
    "sql",
    [
        BULK,
        "SELECT * FROM records_all WHERE false",
        "SELECT 1 AS one",
        "SELECT attributes, tags, duration FROM records_all WHERE level > 9",
        "SELECT * FROM metrics",
    ],
)
@pytest.mark.parametrize("body_format", ["arrow", "v2_json"])
def test_12_body_written_to_a_descriptor_is_exactly_the_encoded_answer(
    engine: Engine, sql: str, body_format: BodyFormat
) -> None:
    """An Arrow body is written as it is sent, its length known from a dry run: both must match the bytes."""
    request = WorkerRequest(QuerySpec(sql=sql, limit=10_000, min_timestamp=0), body_format, False, 1 << 30)
    body = answer(engine, request)
    reader, writer = os.pipe()
    received: list[bytes] = []
    with os.fdopen(reader, "rb") as out:  # read meanwhile: a body larger than the pipe would block the write
        thread = threading.Thread(target=lambda: received.append(out.read()))
        thread.start()
        body.write(writer, b"<", b">")
        os.close(writer)
        thread.join()
    expected = _encoded(body.content, {}, "arrow") if isinstance(body.content, pa.Table) else body.content
    assert received == [b"<" + bytes(expected) + b">"]
    assert body.length == len(expected)


@pytest.mark.parametrize("limit", [1, 10, 4_999])
@pytest.mark.parametrize("body_format", ["arrow", "v2_json"])
def test_12_answer_exactly_at_the_cap_is_allowed_and_one_byte_under_it_is_refused(
    engine: Engine, limit: int, body_format: BodyFormat
) -> None:
    """The cap is on the result's own bytes (was: a few rows sliced from a stored batch counted the whole batch,
    so one 7 KB row was refused under a cap of megabytes)."""
    spec = QuerySpec(sql=BULK, limit=limit, min_timestamp=0)
    length = answer(engine, WorkerRequest(spec, body_format, False, 1 << 30)).length
    assert answer(engine, WorkerRequest(spec, body_format, False, length)).length == length
    with pytest.raises(QueryError, match="max_result_bytes"):
        answer(engine, WorkerRequest(spec, body_format, False, length - 1))


def test_12_body_written_to_a_reset_socket_raises_and_prints_nothing(
    engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client gone mid-answer is an OSError for the worker, nothing else.

    Was: Arrow's buffered stream printed a traceback to the server's stderr for each one, as it was destroyed.
    """
    request = WorkerRequest(QuerySpec(sql=BULK, limit=10_000, min_timestamp=0), "arrow", False, 1 << 30)
    body = answer(engine, request)
    assert body.length > 1 << 20
    ours, theirs = socket.socketpair()
    theirs.close()
    with ours, pytest.raises(OSError):
        body.write(ours.fileno())
    gc.collect()
    assert capfd.readouterr().err == ""
