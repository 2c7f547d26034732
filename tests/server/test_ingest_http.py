"""The OTLP receivers as a collector answers: tokens, encodings, limits, malformed bodies, partial success."""

from __future__ import annotations

import gzip
import logging
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from logfire_io.server import LocalLogfire
from tests.server.otlp import SpanSpec, post, query, trace_request

LIMIT = 64 * 1024
NOW_NS = time.time_ns()


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=0, max_ingest_bytes=LIMIT) as server:
        yield server


@pytest.fixture
def client(srv: LocalLogfire) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        yield c


_ids = iter(range(1, 1 << 30))


def _span(name: str = "s", **kwargs: object) -> SpanSpec:
    n = next(_ids)
    return SpanSpec(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=name, start_ns=NOW_NS, **kwargs)


def _count(srv: LocalLogfire, client: httpx.Client, where: str) -> int:
    return int(query(client, srv.read_token, f"SELECT count(*) AS n FROM records_all WHERE {where}")[0]["n"])


def test_write_token_writes_and_read_token_does_not(srv: LocalLogfire, client: httpx.Client) -> None:
    body = trace_request([_span("token check")]).SerializeToString()
    assert post(client, "/v1/traces", body, srv.read_token).status_code == 401
    assert "read token" in post(client, "/v1/traces", body, srv.read_token).json()["detail"]
    assert post(client, "/v1/traces", body, "pylf_v1_local_wrong").status_code == 401
    assert post(client, "/v1/traces", body, "").status_code == 401
    assert _count(srv, client, "span_name = 'token check'") == 0
    assert post(client, "/v1/traces", body, f"Bearer {srv.write_token}").status_code == 200
    assert _count(srv, client, "span_name = 'token check'") == 1


def test_write_token_cannot_read(srv: LocalLogfire, client: httpx.Client) -> None:
    answer = client.post(
        "/v2/query",
        json={"sql": "SELECT 1", "min_timestamp": "2000-01-01T00:00:00Z"},
        headers={"authorization": srv.write_token},
    )
    assert answer.status_code == 401
    assert "write token" in answer.json()["detail"]
    assert srv.write_token not in answer.text


def test_info_answers_the_sdk_for_the_write_token(srv: LocalLogfire, client: httpx.Client) -> None:
    answer = client.get("/v1/info", headers={"authorization": srv.write_token})
    assert answer.status_code == 200
    assert set(answer.json()) == {"project_name", "project_url"}
    assert client.get("/v1/info", headers={"authorization": "nope"}).status_code == 401


def test_15_acknowledged_batch_is_visible_within_a_second(srv: LocalLogfire, client: httpx.Client) -> None:
    body = trace_request([_span("visible at once")]).SerializeToString()
    assert post(client, "/v1/traces", body, srv.write_token, compress=True).status_code == 200
    acked = time.monotonic()
    while _count(srv, client, "span_name = 'visible at once'") == 0:
        assert time.monotonic() - acked < 1.0
    assert time.monotonic() - acked < 1.0


def test_answer_is_an_export_response_in_the_request_encoding(srv: LocalLogfire, client: httpx.Client) -> None:
    request = trace_request([_span()])
    answer = post(client, "/v1/traces", request.SerializeToString(), srv.write_token)
    assert answer.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(answer.content)
    assert not parsed.HasField("partial_success")
    from tests.server.otlp import otlp_json

    answer = post(client, "/v1/traces", otlp_json(trace_request([_span()])), srv.write_token, as_json=True)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}


def test_partial_success_keeps_the_valid_spans(srv: LocalLogfire, client: httpx.Client) -> None:
    good = _span("partial good")
    bad = SpanSpec(trace_id=b"\x01\x02\x03", span_id=b"\x00" * 8, name="partial bad", start_ns=NOW_NS)
    answer = post(client, "/v1/traces", trace_request([good, bad]).SerializeToString(), srv.write_token)
    assert answer.status_code == 200
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(answer.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "trace ids" in parsed.partial_success.error_message
    assert _count(srv, client, "span_name LIKE 'partial %'") == 1


def test_summary_metrics_are_dropped_and_reported(srv: LocalLogfire, client: httpx.Client) -> None:
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    summary = metrics.add(name="a.summary")
    summary.summary.data_points.add(time_unix_nano=NOW_NS, count=1, sum=2.0)
    gauge = metrics.add(name="a.gauge", unit="1")
    gauge.gauge.data_points.add(time_unix_nano=NOW_NS, as_int=7)
    answer = post(client, "/v1/metrics", request.SerializeToString(), srv.write_token)
    parsed = ExportMetricsServiceResponse()
    parsed.ParseFromString(answer.content)
    assert parsed.partial_success.rejected_data_points == 1
    rows = query(client, srv.read_token, "SELECT metric_name, scalar_value FROM metrics")
    assert rows == [{"metric_name": "a.gauge", "scalar_value": 7.0}]


def test_otel_logs(srv: LocalLogfire, client: httpx.Client) -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=NOW_NS, severity_number=13, body={"string_value": "plain otel log"})
    structured = records.add(observed_time_unix_nano=NOW_NS, severity_text="ERROR")
    structured.body.kvlist_value.values.add(key="event", value={"string_value": "structured"})
    assert post(client, "/v1/logs", request.SerializeToString(), srv.write_token).status_code == 200
    sql = "SELECT kind, level, message, log_body FROM records WHERE log_body IS NOT NULL ORDER BY level"
    assert query(client, srv.read_token, sql) == [
        {"kind": "log", "level": 13, "message": "plain otel log", "log_body": "plain otel log"},
        # log_body is a JSON column: the JSON answer nests it, as Logfire's does
        {"kind": "log", "level": 17, "message": '{"event":"structured"}', "log_body": {"event": "structured"}},
    ]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/x-protobuf"}, b"\xff\xff\xff\xff garbage", 400),
        ({"content-type": "application/json"}, b"{not json", 400),
        (
            {"content-type": "application/json"},
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}',
            400,
        ),
        (
            {"content-type": "application/json"},
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            400,
        ),
        ({"content-type": "text/plain"}, b"hello", 415),
        ({"content-type": "application/x-protobuf", "content-encoding": "zstd"}, b"\x28\xb5\x2f\xfd", 400),
        ({"content-type": "application/x-protobuf", "content-encoding": "deflate"}, zlib.compress(b"x" * 99)[:-4], 400),
        ({"content-type": "application/x-protobuf", "content-encoding": "gzip"}, b"not gzip at all", 400),
        ({"content-type": "application/x-protobuf", "content-encoding": "gzip"}, gzip.compress(b"x" * 100)[:-12], 400),
        ({"content-type": "application/x-protobuf"}, b"\x00" * (LIMIT + 1), 413),
        (
            {"content-type": "application/x-protobuf", "content-encoding": "gzip"},
            gzip.compress(b"\x00" * 10 * LIMIT),
            413,
        ),
    ],
    ids=[
        *("protobuf", "json", "json-shape", "json-hex", "type", "zstd", "deflate-cut"),
        *("gzip", "gzip-cut", "size", "gzip-bomb"),
    ],
)
def test_bad_bodies_are_refused_and_the_server_keeps_serving(
    srv: LocalLogfire, client: httpx.Client, headers: dict[str, str], body: bytes, status: int
) -> None:
    answer = client.post("/v1/traces", content=body, headers={"authorization": srv.write_token, **headers})
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    good = trace_request([_span()]).SerializeToString()
    assert post(client, "/v1/traces", good, srv.write_token).status_code == 200


def test_no_token_in_logs_or_answers(
    srv: LocalLogfire, client: httpx.Client, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    body = trace_request([_span()]).SerializeToString()
    answers = [
        post(client, "/v1/traces", body, srv.read_token),
        post(client, "/v1/traces", b"garbage\xff", srv.write_token),
        post(client, "/v1/traces", body, srv.write_token),
        client.post("/v2/query", json={"sql": "SELECT 1"}, headers={"authorization": srv.write_token}),
    ]
    out, err = capfd.readouterr()
    for text in [caplog.text, out, err, *(a.text for a in answers)]:
        assert srv.write_token not in text
        assert srv.read_token not in text


def test_15_values_that_do_not_fit_the_schema_are_a_400(srv: LocalLogfire, client: httpx.Client) -> None:
    """Regression: a histogram count past INTEGER's range raised inside the endpoint (a 500 the SDK retries forever)."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="huge", unit="1")
    metric.histogram.data_points.add(time_unix_nano=NOW_NS, count=2**40, bucket_counts=[2**40])
    answer = post(client, "/v1/metrics", request.SerializeToString(), srv.write_token)
    assert answer.status_code == 400
    assert "does not fit" in answer.json()["detail"]


def test_15_deflate_bodies_are_accepted(srv: LocalLogfire, client: httpx.Client) -> None:
    """Regression: ``deflate``, which the SDK's exporters send with ``OTEL_EXPORTER_OTLP_COMPRESSION=deflate``
    (zlib framing, ``zlib.compress``), was refused with 415."""
    body = zlib.compress(trace_request([_span("deflated")]).SerializeToString())
    headers = {"content-type": "application/x-protobuf", "content-encoding": "deflate"}
    answer = client.post("/v1/traces", content=body, headers={"authorization": srv.write_token, **headers})
    assert answer.status_code == 200
    assert query(client, srv.read_token, "SELECT span_name FROM records WHERE span_name = 'deflated'")


def test_15_odd_bookkeeping_values_do_not_lose_the_batch(srv: LocalLogfire, client: httpx.Client) -> None:
    """Regression: a ``logfire.level_num`` past INTEGER (a 400 for the whole batch), a list as ``logfire.span_type``
    and ``http.status_code = "²"`` (both a 500 the SDK retries forever) now map like absent values."""
    from tests.server.otlp import _any

    request = trace_request([_span("odd", level_num=2**40)])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="logfire.span_type", value=_any(["log"]))
    span.attributes.add(key="http.status_code", value=_any("²"))
    assert post(client, "/v1/traces", request.SerializeToString(), srv.write_token).status_code == 200
    sql = "SELECT kind, level, http_response_status_code FROM records WHERE span_name = 'odd'"
    assert query(client, srv.read_token, sql) == [{"kind": "span", "level": 9, "http_response_status_code": None}]


def test_15_a_json_encoded_lone_surrogate_stays_text(srv: LocalLogfire, client: httpx.Client) -> None:
    """Regression: a JSON-encoded value holding the escape of a lone surrogate decoded to a string no column can
    hold, and the batch failed with a 500 (retried forever); the value is now kept as the text that was sent."""
    from tests.server.otlp import _any

    request = trace_request([_span("surrogate")])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    span.attributes.add(key="payload", value=_any('["\\ud800"]'))
    span.attributes.add(key="logfire.json_schema", value=_any('{"properties": {"payload": {"type": "array"}}}'))
    assert post(client, "/v1/traces", request.SerializeToString(), srv.write_token).status_code == 200
    sql = "SELECT attributes->>'payload' AS p FROM records WHERE span_name = 'surrogate'"
    rows = query(client, srv.read_token, sql)
    assert rows == [{"p": '["\\ud800"]'}]


def test_15_integers_past_64_bits_in_json_attributes_stay_exact(srv: LocalLogfire, client: httpx.Client) -> None:
    """Regression: JSON-encoded attribute values were decoded with orjson, which turns 2**70 into a float."""
    span = _span("big int", attributes={"ids": [2**70 + 1, -(2**65) - 3], "nested": {"n": 2**64 + 7}})
    assert post(client, "/v1/traces", trace_request([span]).SerializeToString(), srv.write_token).status_code == 200
    import json

    import logfire_io  # noqa: F401
    import polars as pl

    frame = pl.read_logfire(  # Arrow, so the stored text arrives as it is
        "SELECT attributes FROM records WHERE span_name = 'big int'",
        read_token=srv.read_token,
        base_url=srv.base_url,
        json_columns=None,
    )
    assert json.loads(frame["attributes"][0]) == {"ids": [2**70 + 1, -(2**65) - 3], "nested": {"n": 2**64 + 7}}
