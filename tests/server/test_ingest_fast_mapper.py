"""Property: the server's span mapper gives, for any OTLP trace request, exactly the columns of the reference mapper
(``tests/server/reference_mapper.py``, the plain per-span mapping it replaced), and rejects the same spans.

Requests are drawn to reach every branch: every ``AnyValue`` kind, bookkeeping keys of the wrong type, JSON
schemas that are valid, empty or garbage, JSON-encoded values that do not decode, HTTP attributes of any type,
exception and other events, links, every status, and ids that are empty, all zero or the wrong length.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from logfire_io.server.ingest import map_request
from tests.server.otlp import _any
from tests.server.reference_mapper import reference_span
from tests.strategies import awkward_json_values, json_values

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=64),
    _text,
    st.binary(max_size=6),
    st.sampled_from(["200", " 404 ", "²", "٣", "-1", "99999999999", "GET", "/a?b=c"]),
)
_KEYS = [
    "logfire.msg",
    "logfire.msg_template",
    "logfire.level_num",
    "logfire.span_type",
    "logfire.tags",
    "logfire.pending_parent_id",
    "http.response.status_code",
    "http.status_code",
    "http.request.method",
    "http.method",
    "http.route",
    "url.full",
    "http.url",
    "url.path",
    "url.query",
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "payload",
    "n",
]
_keys = st.sampled_from(_KEYS) | _text


_values = st.recursive(
    _scalar_values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=6,
)
_json_texts = st.one_of(
    (json_values | awkward_json_values).map(lambda v: json.dumps(v)),
    st.sampled_from(["{", "NaN", "-0", "1e999", '{"a":1,"a":2}', "[1,]", "", " 7 ", "18446744073709551616"]),
    st.sampled_from([2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]).map(lambda n: f'{{"n": [{n}]}}'),
    st.just('["\\ud800"]'),
)


@st.composite
def _attributes(draw: st.DrawFn) -> list[KeyValue]:
    plain = draw(st.dictionaries(_keys, _values, max_size=6))
    encoded = draw(st.dictionaries(_keys, _json_texts, max_size=3))
    pairs = {**plain, **encoded}
    properties = {key: draw(st.sampled_from([{}, {"type": "object"}, {"type": "array"}])) for key in encoded}
    properties.update({key: {} for key in draw(st.lists(st.sampled_from([*plain, "x"]), max_size=2))})
    schema = draw(
        st.one_of(
            st.just(json.dumps({"type": "object", "properties": properties})),
            st.sampled_from(["", "{", "[]", '{"properties": null}', '{"properties": {"n": {"type": "object"}}}']),
            st.none(),
        )
    )
    if schema is not None:
        pairs["logfire.json_schema"] = schema
    if draw(st.booleans()):
        pairs["logfire.level_num"] = draw(st.sampled_from([1, 9, 17, True, "9", 2**40, None]))
    if draw(st.booleans()):
        pairs["logfire.span_type"] = draw(st.sampled_from(["span", "log", "pending_span", "other", 3]))
    if draw(st.booleans()):
        pairs["logfire.tags"] = draw(st.lists(_scalar_values.filter(lambda v: not isinstance(v, bytes)), max_size=3))
    return [KeyValue(key=k, value=_any(v)) for k, v in pairs.items()]


_small_attributes = st.dictionaries(_keys, _values, max_size=3).map(
    lambda pairs: [KeyValue(key=k, value=_any(v)) for k, v in pairs.items()]
)
_ids16 = st.one_of(st.binary(min_size=16, max_size=16), st.just(bytes(16)), st.binary(max_size=17))
_ids8 = st.one_of(st.binary(min_size=8, max_size=8), st.just(bytes(8)), st.binary(max_size=9))


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(_ids16),
        span_id=draw(_ids8),
        parent_span_id=draw(_ids8),
        name=draw(_text),
        start_time_unix_nano=draw(st.integers(0, 2**63)),
        end_time_unix_nano=draw(st.integers(0, 2**63)),
        attributes=draw(_attributes()),
    )
    span.status.code = draw(st.integers(0, 2))
    span.status.message = draw(_text)
    for _ in range(draw(st.integers(0, 3))):
        event = span.events.add(name=draw(st.sampled_from(["exception", "retry", ""])))
        event.time_unix_nano = draw(st.integers(0, 2**62))
        event.attributes.extend(draw(_small_attributes))
    for _ in range(draw(st.integers(0, 2))):
        link = span.links.add(trace_id=draw(_ids16), span_id=draw(_ids8))
        link.attributes.extend(draw(_small_attributes))
    return span


@settings(max_examples=40, deadline=None)
@given(groups=st.lists(st.lists(_spans(), max_size=5), min_size=1, max_size=3))
def test_fast_mapper_equals_the_reference_mapper(groups: list[list[Span]]) -> None:
    request = ExportTraceServiceRequest()
    for spans in groups:
        request.resource_spans.add().scope_spans.add().spans.extend(spans)
    mapped = map_request("traces", request, received_us=1_700_000_000_000_000)
    expected = [row for spans in groups for span in spans if (row := reference_span(span)) is not None]
    assert mapped.rejected == sum(len(spans) for spans in groups) - len(expected)
    got = mapped.rows.select(list(expected[0]) if expected else []).to_pylist()
    assert len(got) == len(expected)
    for index, (row, want) in enumerate(zip(got, map(_as_arrow_reads, expected), strict=True)):
        differ = {key: (row[key], value) for key, value in want.items() if row[key] != value}
        assert not differ, f"row {index}: (fast, reference) {differ}"


def _as_arrow_reads(row: dict[str, Any]) -> dict[str, Any]:
    """The reference row as Arrow gives it back: times as datetimes of the records schema."""
    from datetime import UTC, datetime, timedelta

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        **row,
        "start_timestamp": epoch + timedelta(microseconds=row["start_timestamp"]),
        "end_timestamp": epoch + timedelta(microseconds=row["end_timestamp"]),
    }
