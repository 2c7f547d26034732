"""The span mapper as first written, one plain dict per span, kept as the oracle of the server's fast mapper.

It follows the rules of :mod:`logfire_io.server.ingest`'s docstring field by field, with no shortcut: every
attribute goes through the general ``_value``, every derived column through its helper, JSON-encoded values are
restored with the standard library. The server's mapper must give the same columns for every span.
It carries the fixes found while writing the fast mapper (a ``level_num`` past INTEGER, a non-ASCII digit
status code, a decoded lone surrogate): those are rules, not shortcuts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from typing import Any

from logfire_io.server.ingest import _iso, _json, _json_encoded_keys

BOOKKEEPING = (
    "logfire.msg",
    "logfire.msg_template",
    "logfire.level_num",
    "logfire.span_type",
    "logfire.tags",
    "logfire.json_schema",
    "logfire.pending_parent_id",
)


def value_of(value: Any) -> Any:
    """The Python value of an OTLP ``AnyValue`` (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: value_of(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


def _hex_or_none(raw: bytes, size: int) -> str | None:
    return raw.hex() if len(raw) == size and any(raw) else None


def _small_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value)
    return value if isinstance(value, int) and -(2**31) <= value < 2**31 else None


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else _json(value)


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    return next((attributes[k] for k in keys if attributes.get(k) is not None), None)


def reference_span(span: Any) -> dict[str, Any] | None:
    """The record columns of one OTLP span (resource, scope and ingest-time columns aside); None if rejected."""
    trace_id, span_id = _hex_or_none(span.trace_id, 16), _hex_or_none(span.span_id, 8)
    if trace_id is None or span_id is None or len(span.parent_span_id) not in (0, 8):
        return None
    attributes = attributes_of(span.attributes)
    kind = attributes.get("logfire.span_type")
    kind = kind if kind in ("span", "log", "pending_span") else "span"
    level = attributes.get("logfire.level_num")
    if not isinstance(level, int) or isinstance(level, bool) or not -(2**31) <= level < 2**31:
        level = 17 if span.status.code == 2 else 9
    start, end = span.start_time_unix_nano // 1000, span.end_time_unix_nano // 1000
    events = [
        {"name": e.name, "timestamp": _iso(e.time_unix_nano), "attributes": attributes_of(e.attributes)}
        for e in span.events
    ]
    exception = next((e["attributes"] for e in events if e["name"] == "exception"), None)
    links = [
        {
            "trace_id": binascii.hexlify(link.trace_id).decode(),
            "span_id": binascii.hexlify(link.span_id).decode(),
            "attributes": attributes_of(link.attributes),
        }
        for link in span.links
    ]
    schema = attributes.get("logfire.json_schema")
    if isinstance(schema, str):
        for key in _json_encoded_keys(schema):
            if isinstance(attributes.get(key), str):
                with contextlib.suppress(ValueError):  # kept as text if it does not decode or holds "\ud800"
                    decoded = json.loads(attributes[key])
                    json.dumps(decoded, ensure_ascii=False).encode("utf-8")
                    attributes[key] = decoded
    tags, message = attributes.get("logfire.tags"), attributes.get("logfire.msg")
    row = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": _hex_or_none(span.parent_span_id, 8),
        "start_timestamp": start,
        "end_timestamp": end,
        "duration": None if kind == "log" else (end - start) / 1e6,
        "log_body": None,
        "is_exception": exception is not None,
        "exception_type": _text((exception or {}).get("exception.type")),
        "exception_message": _text((exception or {}).get("exception.message")),
        "exception_stacktrace": _text((exception or {}).get("exception.stacktrace")),
        "otel_status_code": {0: "UNSET", 1: "OK", 2: "ERROR"}.get(span.status.code, "UNSET"),
        "otel_status_message": span.status.message or None,
        "otel_events": _json(events) if events else "[]",
        "otel_links": _json(links) if links else "[]",
        "kind": kind,
        "level": level,
        "span_name": span.name,
        "message": message if isinstance(message, str) else span.name,
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "attributes_json_schema": schema if isinstance(schema, str) else None,
        "http_response_status_code": _small_int(_first(attributes, "http.response.status_code", "http.status_code")),
        "http_method": _text(_first(attributes, "http.request.method", "http.method")),
        "http_route": _text(attributes.get("http.route")),
        "url_full": _text(_first(attributes, "url.full", "http.url")),
        "url_path": _text(attributes.get("url.path")),
        "url_query": _text(attributes.get("url.query")),
    }
    row["attributes"] = _json({k: v for k, v in attributes.items() if k not in BOOKKEEPING})
    return row
