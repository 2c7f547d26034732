"""Build OTLP export requests the way an SDK does, from plain Python descriptions of spans (test helper)."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

NATIVE = (str, bool, int, float)


@dataclass
class SpanSpec:
    """One span as a test describes it; ``attributes`` are the user's values, of any JSON type."""

    trace_id: bytes
    span_id: bytes
    name: str
    start_ns: int
    duration_ns: int = 1_000
    parent_id: bytes = b""
    attributes: dict[str, Any] = field(default_factory=dict)
    level_num: int | None = None
    tags: list[str] | None = None
    msg: str | None = None
    span_type: str | None = None
    error: bool = False


def _any(value: Any) -> AnyValue:
    """``value`` as an OTLP ``AnyValue`` (None is one with no value set)."""
    out = AnyValue()
    if value is None:
        return out
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(_any(v) for v in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(KeyValue(key=k, value=_any(v)) for k, v in value.items())
    else:
        msg = f"not an OTLP attribute value: {value!r}"
        raise TypeError(msg)
    return out


def trace_request(spans: list[SpanSpec], *, service: str = "svc") -> ExportTraceServiceRequest:
    """A request as the logfire SDK encodes it: compound values JSON-encoded and named in ``logfire.json_schema``."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=_any(service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    for spec in spans:
        span = scope_spans.spans.add()
        span.trace_id, span.span_id, span.parent_span_id = spec.trace_id, spec.span_id, spec.parent_id
        span.name = spec.name
        span.start_time_unix_nano = spec.start_ns
        span.end_time_unix_nano = spec.start_ns + spec.duration_ns
        if spec.error:
            span.status.code = 2
        properties = {}
        for key, value in spec.attributes.items():
            if isinstance(value, NATIVE):
                span.attributes.add(key=key, value=_any(value))
                properties[key] = {}
            else:
                span.attributes.add(key=key, value=_any(json.dumps(value)))
                properties[key] = {
                    "type": "null" if value is None else "array" if isinstance(value, list) else "object"
                }
        bookkeeping: dict[str, Any] = {
            "logfire.json_schema": json.dumps({"type": "object", "properties": properties}),
            "logfire.level_num": spec.level_num,
            "logfire.tags": spec.tags,
            "logfire.msg": spec.msg,
            "logfire.span_type": spec.span_type,
        }
        for key, value in bookkeeping.items():
            if value is not None:
                span.attributes.add(key=key, value=_any(value))
    return request


def otlp_json(request: Any) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping, with trace and span ids as hex as the OTLP spec requires."""

    def hexify(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [hexify(v) for v in value]
        return value

    return json.dumps(hexify(MessageToDict(request))).encode()


def post(
    client: httpx.Client, path: str, body: bytes, token: str, *, as_json: bool = False, compress: bool = False
) -> httpx.Response:
    """POST an export as an SDK does (raw token in ``Authorization``)."""
    headers = {
        "authorization": token,
        "content-type": "application/json" if as_json else "application/x-protobuf",
    }
    if compress:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return client.post(path, content=body, headers=headers)


def query(client: httpx.Client, token: str, sql: str, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """The rows of one ``POST /v2/query`` over every time (the local server's JSON answer)."""
    answer = client.post(
        "/v2/query",
        json={"sql": sql, "min_timestamp": "1970-01-01T00:00:00Z", "limit": limit},
        headers={"authorization": token},
    )
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


class ServeProcess:
    """``logfire-io serve --data-dir`` as a user runs it, in its own process group so its query workers end with it."""

    def __init__(self, data_dir: Path, read_token: str, write_token: str, *extra: str) -> None:
        command = [
            sys.executable,
            "-c",
            "from logfire_io._cli import main; raise SystemExit(main())",
            "serve",
            "--port=0",
            "--demo-rows=0",
            f"--data-dir={data_dir}",
            f"--read-token={read_token}",
            f"--write-token={write_token}",
            *extra,
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if "base URL:" in line:
                    self.base_url = line.split("base URL:")[1].strip()
                    return
            msg = f"the server did not start (exit code {self.proc.wait()})"
            raise RuntimeError(msg)
        except BaseException:  # a timeout or an interrupt while starting: never leave the server running
            self.stop(signal.SIGKILL)
            raise

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """Send ``how`` to the server and its workers (SIGKILL: a crash) and wait for the server to end."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, how)
        self.proc.wait(timeout=60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
