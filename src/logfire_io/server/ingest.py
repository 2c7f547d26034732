"""OTLP export requests to rows of Logfire's ``records_all`` and ``metrics`` tables, as Logfire maps them.

Decoding uses the maintained ``opentelemetry-proto`` messages (protobuf, or OTLP/JSON with hex ids). The rules
below come from the ``logfire`` SDK's source (what it sends: ``logfire/_internal/constants.py``, ``main.py``,
``json_schema.py``, ``tracer.py``), from Logfire's SQL reference and from the recorded real responses in
``fixtures/wire``. Rules marked *(unverified)* could not be checked against a real Logfire response; they are
this server's best reading and may differ from the service.

Spans (``/v1/traces``), one row each:

- ``trace_id``, ``span_id``, ``parent_span_id``: lowercase hex; no parent is NULL. A span whose ids are not 16
  and 8 bytes is rejected (counted in the partial success), the rest of the request is kept.
- ``start_timestamp``/``end_timestamp``: the span's times in microseconds (nanoseconds truncated).
  ``duration``: seconds between them, NULL for logs (SQL reference).
- ``kind``: the ``logfire.span_type`` attribute (``span``, ``log``, ``pending_span``); ``span`` when absent or
  anything else.
- ``level``: ``logfire.level_num``; without it (or when it is not an integer that fits ``level``'s INTEGER) 17
  for an ERROR status and 9 otherwise (SQL reference).
- ``span_name``: the span name (for the SDK, the message template); ``message``: ``logfire.msg``, else the name.
- ``tags``: ``logfire.tags``, ``[]`` when absent (wire cassette).
- ``attributes``: a JSON object of the span attributes without the bookkeeping keys ``logfire.msg``,
  ``logfire.tags``, ``logfire.level_num`` (SQL reference) and ``logfire.msg_template``, ``logfire.span_type``,
  ``logfire.json_schema``, ``logfire.pending_parent_id`` *(unverified)*. A string value whose entry in
  ``logfire.json_schema``'s ``properties`` is not ``{}`` was JSON-encoded by the SDK (``prepare_otlp_attribute``)
  and is stored decoded, so ``{"d": {"a": 1}}`` reads back as an object. Protobuf bytes are base64 *(unverified)*.
- ``attributes_json_schema``: ``logfire.json_schema`` as sent.
- ``is_exception``: whether an ``exception`` event exists; ``exception_type``/``_message``/``_stacktrace`` from
  the first one's ``exception.*`` attributes (SQL reference).
- ``otel_events``: JSON ``[{"name", "timestamp" (RFC 3339, µs, Z), "attributes"}]``; ``otel_links``: JSON
  ``[{"trace_id", "span_id", "attributes"}]`` *(both shapes unverified)*.
- Span events other than ``exception`` are kept only in ``otel_events``. *(UNVERIFIED, and not implemented:)*
  the project's QUERY-API spec says Logfire also copies each of them as a ``kind = 'span_event'`` row; nothing
  confirms it: the SDK never writes such a row (events travel inside their span; ``span_event`` appears nowhere
  in its source), the recorded responses in ``fixtures/wire`` hold only ``span`` and ``log`` rows, and the
  columns such a row would get (its ``span_id``, ``span_name``, ``level``) are documented nowhere.
- ``otel_status_code``: ``UNSET``, ``OK`` or ``ERROR``; ``otel_status_message``: the description or NULL
  *(strings unverified)*.
- ``otel_scope_*``: the instrumentation scope; ``otel_resource_attributes``: the resource as a JSON object.
- From the resource: ``service_name`` (``service.name``, else ``unknown_service``), ``service_version``,
  ``service_instance_id``, ``service_namespace``, ``process_pid``, ``deployment_environment``
  (``deployment.environment.name``, else ``deployment.environment``), ``telemetry_sdk_name``/``_language``/
  ``_version`` (QUERY-API spec §4.2).
- From the attributes: ``http_response_status_code`` (``http.response.status_code``, else
  ``http.status_code``; NULL unless an integer), ``http_method`` (``http.request.method``, else ``http.method``
  *(order unverified)*), ``http_route``, ``url_full`` (``url.full``, else ``http.url``), ``url_path``,
  ``url_query``.
- ``created_at``: when this server received the request; ``day``: the UTC date of ``start_timestamp``;
  ``project_id``: the local project's id. Pending spans are kept as sent (their own ``span_id``, the real span as
  parent) *(unverified)*; the ``records`` view hides them.

Logs (``/v1/logs``), one row each, ``kind = 'log'``: times from ``time_unix_nano`` (else the observed time),
``level`` from the severity number (else the severity text, else 9), ``log_body`` the body (a string, or JSON),
``message`` ``logfire.msg`` else the body as text, ``span_name`` ``logfire.msg_template`` else the body text
*(unverified)*; the record gets a fresh ``span_id`` under the span it was emitted in (``parent_span_id``) and a
fresh ``trace_id`` when it has none *(unverified)*; ``exception.*`` attributes fill the exception columns.

Metrics (``/v1/metrics``), one row per data point: ``metric_type`` ``gauge``, ``sum``, ``histogram`` or
``exponential_histogram``; ``aggregation_temporality`` ``delta``/``cumulative``; ``scalar_value`` for gauges and
sums; the ``histogram_*`` and ``exp_histogram_*`` columns from the point; ``recorded_timestamp`` the point's time,
``start_timestamp`` its start (NULL when 0); ``exemplars`` JSON *(shape unverified)*. Summary points are dropped,
as Logfire drops them (limits reference), and reported as rejected.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import orjson
import pyarrow as pa
from google.protobuf.json_format import ParseDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from logfire_io.schema import LEVEL_NUMBERS, METRICS_SCHEMA, RECORDS_SCHEMA

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["LOCAL_PROJECT_ID", "Mapped", "Signal", "decode", "map_request", "response"]

Signal = Literal["traces", "logs", "metrics"]
LOCAL_PROJECT_ID = "00000000-0000-4000-8000-000000000003"
"""``project_id`` of every ingested row (the id ``/v1/read-token-info`` reports)."""

_REQUESTS: dict[Signal, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
_BOOKKEEPING = frozenset(
    {
        "logfire.msg",
        "logfire.msg_template",
        "logfire.level_num",
        "logfire.span_type",
        "logfire.tags",
        "logfire.json_schema",
        "logfire.pending_parent_id",
    }
)
_KINDS = frozenset({"span", "log", "pending_span"})
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_TEMPORALITY = {1: "delta", 2: "cumulative"}
_HEX_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_RESOURCE_COLUMNS = (
    ("service_version", "service.version"),
    ("service_instance_id", "service.instance.id"),
    ("service_namespace", "service.namespace"),
    ("telemetry_sdk_name", "telemetry.sdk.name"),
    ("telemetry_sdk_language", "telemetry.sdk.language"),
    ("telemetry_sdk_version", "telemetry.sdk.version"),
)
_DAY_US = 86_400_000_000


class MalformedRequest(ValueError):
    """Raised when a request body does not decode as the OTLP message of its endpoint."""


@dataclass(frozen=True)
class Mapped:
    """The rows of one export request, and what was rejected from it (for the partial-success answer)."""

    table: str
    rows: pa.Table
    rejected: int = 0
    message: str = ""


def decode(signal: Signal, body: bytes, *, as_json: bool) -> Message:
    """Parse an OTLP export request (protobuf, or OTLP/JSON whose ids are hex as the spec says).

    Raises
    ------
    MalformedRequest
        The body is not a valid request of this endpoint; the message says what is wrong.
    """
    message = _REQUESTS[signal]()
    try:
        if as_json:
            ParseDict(_hex_ids_to_base64(orjson.loads(body)), message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except (DecodeError, orjson.JSONDecodeError) as exc:
        kind = "OTLP/JSON" if as_json else "protobuf"
        msg = f"the body is not a valid {kind} {type(message).__name__}: {exc}"
        raise MalformedRequest(msg) from None
    except Exception as exc:  # json_format raises ParseError and others for a wrong JSON shape
        msg = f"the body is not a valid OTLP/JSON {type(message).__name__}: {exc}"
        raise MalformedRequest(msg) from None
    return message


def _hex_ids_to_base64(value: Any) -> Any:
    """OTLP/JSON carries trace and span ids as hex, protobuf's JSON mapping expects base64: convert them."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _HEX_ID_KEYS and isinstance(item, str):
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    msg = f"`{key}` must be a hex string, got {item!r}"
                    raise MalformedRequest(msg) from None
            else:
                item = _hex_ids_to_base64(item)
            out[key] = item
        return out
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def response(signal: Signal, mapped: Mapped, *, as_json: bool) -> bytes:
    """The collector's answer: an empty Export*ServiceResponse, with ``partial_success`` when rows were dropped."""
    if signal == "traces":
        answer: Any = ExportTraceServiceResponse()
        if mapped.rejected:
            answer.partial_success.rejected_spans = mapped.rejected
    elif signal == "logs":
        answer = ExportLogsServiceResponse()
        if mapped.rejected:
            answer.partial_success.rejected_log_records = mapped.rejected
    else:
        answer = ExportMetricsServiceResponse()
        if mapped.rejected:
            answer.partial_success.rejected_data_points = mapped.rejected
    if mapped.rejected:
        answer.partial_success.error_message = mapped.message
    if as_json:
        from google.protobuf.json_format import MessageToDict

        return orjson.dumps(MessageToDict(answer))
    return bytes(answer.SerializeToString())


def map_request(signal: Signal, request: Message, *, received_us: int) -> Mapped:
    """Rows of ``records_all`` (traces, logs) or ``metrics`` for one decoded request."""
    if signal == "traces":
        return _records(request.resource_spans, "scope_spans", "spans", _span, "spans", received_us)  # type: ignore[attr-defined]
    if signal == "logs":
        return _records(request.resource_logs, "scope_logs", "log_records", _log, "log records", received_us)  # type: ignore[attr-defined]
    return _metrics(request, received_us)  # type: ignore[arg-type]


# --- values --------------------------------------------------------------------------------------------------


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def _attributes(pairs: Any) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        out[pair.key] = getattr(value, kind) if kind in _SCALARS else _value(value)
    return out


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits, restored from the SDK's JSON: keep it exact
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _json_encoded_keys(schema: str) -> tuple[str, ...]:
    """Keys that the SDK sent JSON-encoded: those whose ``logfire.json_schema`` property is not ``{}``."""
    try:
        properties = orjson.loads(schema).get("properties") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ()
    return tuple(key for key, prop in properties.items() if prop)


def _restore_json(attributes: dict[str, Any], schema: str) -> None:
    """Decode the values the SDK JSON-encoded, as the stdlib ``json`` does (integers past 64 bits stay exact).

    ``orjson`` is used when it gives the same value: it turns integers past 64 bits into floats, so a text with
    a run of 19 digits or more goes to ``json``, and so does what ``orjson`` refuses (``NaN``, lone surrogates).
    A value that does not decode, or decodes to a lone surrogate (no column can hold it), stays as the text.
    """
    for key in _json_encoded_keys(schema):
        text = attributes.get(key)
        if isinstance(text, str):
            with contextlib.suppress(ValueError):  # orjson.JSONDecodeError and UnicodeEncodeError are ValueErrors
                attributes[key] = _stdlib_loads(text) if _LONG_DIGITS.search(text) else _loads(text)


_LONG_DIGITS = re.compile(r"\d{19}")


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _stdlib_loads(text)


def _stdlib_loads(text: str) -> Any:
    value = json.loads(text)
    json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError on a lone surrogate ("\ud800")
    return value


def _iso(nanos: int) -> str:
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1000:06d}Z"


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else None
    if isinstance(value, str) and value.strip().isdecimal():  # not isdigit: int("²") raises
        return _int_or_none(int(value))
    return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else _json(value)


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


_ZERO_IDS = {16: bytes(16), 8: bytes(8)}


def _hex(raw: bytes, size: int) -> str | None:
    """Lowercase hex of an id of ``size`` bytes; None when it is empty, all zero (invalid in OTLP) or misshapen."""
    return raw.hex() if len(raw) == size and raw != _ZERO_IDS[size] else None


# --- resource and scope ----------------------------------------------------------------------------------------


def _resource_columns(resource: Any) -> dict[str, Any]:
    attributes = _attributes(resource.attributes)
    columns: dict[str, Any] = {
        "otel_resource_attributes": _json(attributes),
        "service_name": _text_or_none(attributes.get("service.name")) or "unknown_service",
        "process_pid": _int_or_none(attributes.get("process.pid")),
        "deployment_environment": _text_or_none(
            _first(attributes, "deployment.environment.name", "deployment.environment")
        ),
    }
    for column, key in _RESOURCE_COLUMNS:
        columns[column] = _text_or_none(attributes.get(key))
    return columns


def _scope_columns(scope: Any) -> dict[str, Any]:
    return {
        "otel_scope_name": scope.name or None,
        "otel_scope_version": scope.version or None,
        "otel_scope_attributes": _json(_attributes(scope.attributes)),
    }


_GROUP_COLUMNS = (
    "otel_resource_attributes",
    "service_name",
    "process_pid",
    "deployment_environment",
    *(column for column, _ in _RESOURCE_COLUMNS),
    "otel_scope_name",
    "otel_scope_version",
    "otel_scope_attributes",
)
"""Columns that come from the resource and scope, the same for every row of one scope group."""
_FIXED_COLUMNS = ("created_at", "day", "project_id")


class _Rows:
    """Rows as tuples (one per span, log or point) plus their scope group, turned into one Arrow table.

    Building a tuple per row and transposing once is the cheapest way to assemble columns in Python; the
    resource and scope columns are built once per group and spread over the rows with one ``take``.
    """

    def __init__(self, schema: pa.Schema, fields: tuple[str, ...]) -> None:
        self.schema, self.fields = schema, fields
        self.rows: list[tuple[Any, ...]] = []
        self.groups: list[dict[str, Any]] = []
        self.group_of_row: list[int] = []
        self.rejected = 0

    def group(self, resource: dict[str, Any], scope: Any) -> int:
        self.groups.append(resource | _scope_columns(scope))
        return len(self.groups) - 1

    def add(self, row: tuple[Any, ...] | None, group: int) -> None:
        self.extend((row,), group)

    def extend(self, rows: Any, group: int) -> None:
        """Add the rows of one scope group (None for an item that was rejected)."""
        before = len(self.rows)
        self.rows.extend(rows)
        if None in self.rows[before:]:
            kept = [row for row in self.rows[before:] if row is not None]
            self.rejected += len(self.rows) - before - len(kept)
            self.rows[before:] = kept
        self.group_of_row.extend([group] * (len(self.rows) - before))

    def table(self, received_us: int, time_column: str) -> pa.Table:
        n = len(self.rows)
        columns: dict[str, pa.Array] = {}
        transposed = list(zip(*self.rows, strict=True)) if n else [()] * len(self.fields)
        for name, values in zip(self.fields, transposed, strict=True):
            columns[name] = _array(values, self.schema.field(name).type)
        where = pa.array(self.group_of_row, pa.int32())
        for name in _GROUP_COLUMNS:
            columns[name] = _array([g[name] for g in self.groups], self.schema.field(name).type).take(where)
        received_day = pa.scalar(received_us // _DAY_US, pa.int32()).cast(pa.date32())
        columns["day"] = columns[time_column].cast(pa.date32()).fill_null(received_day)
        columns["created_at"] = _array([received_us] * n, self.schema.field("created_at").type)
        columns["project_id"] = pa.array([LOCAL_PROJECT_ID] * n, pa.string())
        return pa.Table.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)


def _array(values: Any, type_: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(type_):
        return pa.array(values, pa.int64()).cast(type_)
    if pa.types.is_date32(type_):
        return pa.array(values, pa.int32()).cast(type_)
    return pa.array(values, type_)


# --- records -------------------------------------------------------------------------------------------------

_RECORD_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_timestamp",
    "end_timestamp",
    "duration",
    "log_body",
    "is_exception",
    "exception_type",
    "exception_message",
    "exception_stacktrace",
    "otel_status_code",
    "otel_status_message",
    "otel_events",
    "otel_links",
    # from the attributes, in _from_attributes' order:
    "kind",
    "level",
    "span_name",
    "message",
    "tags",
    "attributes_json_schema",
    "http_response_status_code",
    "http_method",
    "http_route",
    "url_full",
    "url_path",
    "url_query",
    "attributes",
)


def _records(resources: Any, scopes: str, items: str, row: Any, what: str, received_us: int) -> Mapped:
    rows = _Rows(RECORDS_SCHEMA, _RECORD_FIELDS)
    for resource_items in resources:
        resource = _resource_columns(resource_items.resource)
        for scope_items in getattr(resource_items, scopes):
            group = rows.group(resource, scope_items.scope)
            rows.extend(map(row, getattr(scope_items, items)), group)
    message = f"{rows.rejected} {what} rejected: trace ids must be 16 bytes and span ids 8" if rows.rejected else ""
    return Mapped("records_all", rows.table(received_us, "start_timestamp"), rows.rejected, message)


_HTTP_KEYS = frozenset(
    {
        "http.response.status_code",
        "http.status_code",
        "http.request.method",
        "http.method",
        "http.route",
        "url.full",
        "http.url",
        "url.path",
        "url.query",
    }
)
_NO_HTTP = (None,) * 6


def _http_columns(attributes: dict[str, Any]) -> tuple[Any, ...]:
    """The HTTP and URL semantic-convention columns (most spans have none of these keys: see ``_NO_HTTP``)."""
    return (
        _int_or_none(_first(attributes, "http.response.status_code", "http.status_code")),
        _text_or_none(_first(attributes, "http.request.method", "http.method")),
        _text_or_none(attributes.get("http.route")),
        _text_or_none(_first(attributes, "url.full", "http.url")),
        _text_or_none(attributes.get("url.path")),
        _text_or_none(attributes.get("url.query")),
    )


def _from_attributes(attributes: dict[str, Any], level: int, name: str, kind: str) -> tuple[Any, ...]:
    """The columns every record (span or log) derives from its attributes the same way.

    The hot path of ingest (once per span): bookkeeping keys are popped rather than looked up then deleted, and
    the HTTP columns are only looked for when one of their keys is there.
    """
    schema = attributes.get("logfire.json_schema")
    if isinstance(schema, str):
        _restore_json(attributes, schema)
    else:
        schema = None
    message = attributes.pop("logfire.msg", None)
    tags = attributes.pop("logfire.tags", None)
    for key in _BOOKKEEPING:
        attributes.pop(key, None)
    return (
        kind,
        level,
        name,
        message if isinstance(message, str) else name,
        [str(t) for t in tags] if isinstance(tags, list) else [],
        schema,
        *(_NO_HTTP if _HTTP_KEYS.isdisjoint(attributes) else _http_columns(attributes)),
        _json(attributes),
    )


_NO_EXCEPTION = (False, None, None, None)


def _exception(attributes: dict[str, Any] | None) -> tuple[Any, ...]:
    if attributes is None:
        return _NO_EXCEPTION
    return (
        True,
        _text_or_none(attributes.get("exception.type")),
        _text_or_none(attributes.get("exception.message")),
        _text_or_none(attributes.get("exception.stacktrace")),
    )


def _level(value: Any, status: int) -> int:
    """``logfire.level_num`` when it is an integer that fits the column, else 17 for an ERROR status, 9 otherwise."""
    if type(value) is int and -(2**31) <= value < 2**31:
        return value
    return 17 if status == 2 else 9


def _events(events: Any) -> tuple[str, dict[str, Any] | None]:
    """``otel_events`` as JSON, and the attributes of the first ``exception`` event (None without one)."""
    listed, exception = [], None
    for event in events:
        event_attributes = _attributes(event.attributes)
        if event.name == "exception" and exception is None:
            exception = event_attributes
        listed.append({"name": event.name, "timestamp": _iso(event.time_unix_nano), "attributes": event_attributes})
    return _json(listed), exception


def _links(links: Any) -> str:
    return _json(
        [
            {
                "trace_id": binascii.hexlify(link.trace_id).decode(),
                "span_id": binascii.hexlify(link.span_id).decode(),
                "attributes": _attributes(link.attributes),
            }
            for link in links
        ]
    )


def _span(span: Any) -> tuple[Any, ...] | None:
    trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or len(span_id) != 8 or len(parent_id) not in (0, 8):
        return None
    if trace_id == _ZERO_IDS[16] or span_id == _ZERO_IDS[8]:
        return None
    attributes = _attributes(span.attributes)
    kind = attributes.get("logfire.span_type")
    if not isinstance(kind, str) or kind not in _KINDS:  # a list would not even hash
        kind = "span"
    status = span.status
    code = status.code
    start, end = span.start_time_unix_nano // 1000, span.end_time_unix_nano // 1000
    events, exception = _events(span.events) if span.events else ("[]", None)
    return (
        trace_id.hex(),
        span_id.hex(),
        parent_id.hex() if parent_id and parent_id != _ZERO_IDS[8] else None,
        start,
        end,
        None if kind == "log" else (end - start) / 1e6,
        None,
        *_exception(exception),
        _STATUS.get(code, "UNSET"),
        status.message or None,
        events,
        _links(span.links) if span.links else "[]",
        *_from_attributes(attributes, _level(attributes.get("logfire.level_num"), code), span.name, kind),
    )


def _log(record: Any) -> tuple[Any, ...]:
    attributes = _attributes(record.attributes)
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    body_text = _text_or_none(_value(record.body)) if record.HasField("body") else None
    level = record.severity_number or LEVEL_NUMBERS.get(record.severity_text.lower(), 9)
    template = attributes.get("logfire.msg_template")
    name = template if isinstance(template, str) else body_text or "log"
    exception = attributes if any(key.startswith("exception.") for key in attributes) else None
    if "logfire.msg" not in attributes and body_text is not None:
        attributes["logfire.msg"] = body_text
    return (
        _hex(record.trace_id, 16) or os.urandom(16).hex(),
        os.urandom(8).hex(),
        _hex(record.span_id, 8),
        nanos // 1000,
        nanos // 1000,
        None,
        body_text,
        *_exception(exception),
        None,
        None,
        "[]",
        "[]",
        *_from_attributes(attributes, int(level), name, "log"),
    )


# --- metrics -------------------------------------------------------------------------------------------------

_POINT_FIELDS = tuple(name for name in METRICS_SCHEMA.names if name not in {*_GROUP_COLUMNS, *_FIXED_COLUMNS})


def _metrics(request: ExportMetricsServiceRequest, received_us: int) -> Mapped:
    rows = _Rows(METRICS_SCHEMA, _POINT_FIELDS)
    for resource_metrics in request.resource_metrics:
        resource = _resource_columns(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            group = rows.group(resource, scope_metrics.scope)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind == "summary":
                    rows.rejected += len(metric.summary.data_points)
                elif kind is not None:
                    for point in getattr(metric, kind).data_points:
                        rows.add(_point(metric, kind, point), group)
    message = f"{rows.rejected} summary data points dropped: Logfire does not store summaries" if rows.rejected else ""
    return Mapped("metrics", rows.table(received_us, "recorded_timestamp"), rows.rejected, message)


def _point(metric: Any, kind: str, point: Any) -> tuple[Any, ...]:
    data = getattr(metric, kind)
    row: dict[str, Any] = dict.fromkeys(_POINT_FIELDS)
    row.update(
        recorded_timestamp=point.time_unix_nano // 1000,
        start_timestamp=point.start_time_unix_nano // 1000 or None,
        metric_name=metric.name,
        metric_type=kind,
        unit=metric.unit,
        metric_description=metric.description or None,
        aggregation_temporality=_TEMPORALITY.get(getattr(data, "aggregation_temporality", 0)),
        is_monotonic=data.is_monotonic if kind == "sum" else None,
        attributes=_json(_attributes(point.attributes)),
        exemplars=_json([_exemplar(e) for e in point.exemplars]),
    )
    if kind in ("gauge", "sum"):
        row["scalar_value"] = float(getattr(point, point.WhichOneof("value") or "as_double"))
    else:
        row.update(
            histogram_count=point.count,
            histogram_sum=point.sum if point.HasField("sum") else None,
            histogram_min=point.min if point.HasField("min") else None,
            histogram_max=point.max if point.HasField("max") else None,
        )
    if kind == "histogram":
        row.update(
            histogram_bucket_counts=list(point.bucket_counts),
            histogram_explicit_bounds=list(point.explicit_bounds),
        )
    elif kind == "exponential_histogram":
        row.update(
            exp_histogram_scale=point.scale,
            exp_histogram_zero_count=point.zero_count,
            exp_histogram_zero_threshold=point.zero_threshold,
            exp_histogram_positive_bucket_counts=list(point.positive.bucket_counts),
            exp_histogram_positive_bucket_counts_offset=point.positive.offset,
            exp_histogram_negative_bucket_counts=list(point.negative.bucket_counts),
            exp_histogram_negative_bucket_counts_offset=point.negative.offset,
        )
    return tuple(row.values())


def _exemplar(exemplar: Any) -> dict[str, Any]:
    return {
        "time": _iso(exemplar.time_unix_nano),
        "value": getattr(exemplar, exemplar.WhichOneof("value") or "as_double"),
        "trace_id": binascii.hexlify(exemplar.trace_id).decode() or None,
        "span_id": binascii.hexlify(exemplar.span_id).decode() or None,
        "attributes": _attributes(exemplar.filtered_attributes),
    }
