"""A hostile server: a real socket on 127.0.0.1 that answers with whatever bytes a test scripts.

For the responses the local Logfire cannot be made to produce (corrupt Arrow data, decompression bombs, bodies
that never end, echoed secrets): the client still talks HTTP over loopback to a real server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Answer:
    """One scripted answer: a status, headers, and the body as pieces sent one after another."""

    body: bytes | Callable[[], Iterable[bytes]] = b""
    """The whole body (sent with a content-length), or a function giving its pieces (sent chunked)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/vnd.apache.arrow.stream"})
    pause: float = 0.0
    """Seconds to wait before each piece (a slow drip)."""


@dataclass
class Hostile:
    base_url: str
    answers: list[Answer] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request received (names in lower case), in order."""

    def serve(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers`` in order; the last one is repeated."""
        self.answers[:] = answers

    def next_answer(self) -> Answer:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hostile: Hostile

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.hostile.requests.append({name.lower(): value for name, value in self.headers.items()})
        answer = self.hostile.next_answer()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        pieces = [answer.body] if isinstance(answer.body, bytes) else answer.body()
        if isinstance(answer.body, bytes):
            self.send_header("content-length", str(len(answer.body)))
        else:
            self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                time.sleep(answer.pause)
                if isinstance(answer.body, bytes):
                    self.wfile.write(piece)
                elif piece:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            if not isinstance(answer.body, bytes):
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is what many tests do on purpose; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    state = Hostile(f"http://127.0.0.1:{httpd.server_address[1]}", [Answer()])
    httpd.RequestHandlerClass = type("Handler", (_Handler,), {"hostile": state})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
