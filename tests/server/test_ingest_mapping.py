"""Property: spans exported over OTLP/HTTP (protobuf or JSON, gzip or not, in several requests) read back as the
rows the SDK's conventions say, and a time window over the ingested segments returns exactly the rows inside it.

The oracle is the test's own description of each span (``SpanSpec``), mapped by hand here, never by the server.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logfire_io  # noqa: F401
import polars as pl
from logfire_io.server import LocalLogfire
from tests.server.otlp import SpanSpec, otlp_json, post, trace_request
from tests.strategies import json_keys, json_values

_services = itertools.count()
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_keys = json_keys.filter(lambda k: not k.startswith("logfire."))
_nonzero = st.binary(min_size=8, max_size=8).filter(any)
LOW_NS = 1_700_000_000 * 10**9


@st.composite
def span_specs(draw: st.DrawFn) -> SpanSpec:
    return SpanSpec(
        trace_id=draw(st.binary(min_size=16, max_size=16).filter(any)),
        span_id=draw(_nonzero),
        parent_id=draw(st.just(b"") | _nonzero),
        name=draw(_text.filter(bool)),
        start_ns=draw(st.integers(LOW_NS, LOW_NS + 10**13)),
        duration_ns=draw(st.integers(0, 10**10)),
        attributes=draw(st.dictionaries(_keys, json_values, max_size=5)),
        level_num=draw(st.none() | st.sampled_from([1, 5, 9, 10, 13, 17, 21])),
        tags=draw(st.none() | st.lists(_text, max_size=3)),
        msg=draw(st.none() | _text),
        span_type=draw(st.none() | st.sampled_from(["span", "log", "pending_span"])),
        error=draw(st.booleans()),
    )


def expected_row(spec: SpanSpec, service: str) -> dict:
    """What Logfire's rules make of one span, written out independently of the server's mapping."""
    kind = spec.span_type or "span"
    start_us, end_us = spec.start_ns // 1000, (spec.start_ns + spec.duration_ns) // 1000
    return {
        "trace_id": spec.trace_id.hex(),
        "span_id": spec.span_id.hex(),
        "parent_span_id": spec.parent_id.hex() or None,
        "span_name": spec.name,
        "message": spec.name if spec.msg is None else spec.msg,
        "level": spec.level_num if spec.level_num is not None else (17 if spec.error else 9),
        "kind": kind,
        "tags": spec.tags or [],
        "attributes": spec.attributes,
        "start_us": start_us,
        "end_us": end_us,
        "duration": None if kind == "log" else (end_us - start_us) / 1e6,
        "service_name": service,
        "otel_status_code": "ERROR" if spec.error else "UNSET",
        "day": datetime.fromtimestamp(start_us // 1_000_000, UTC).date(),
    }


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=0) as server:
        yield server


def _micros(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(span_specs(), min_size=1, max_size=12, unique_by=lambda s: s.span_id),
    pieces=st.integers(1, 3),
    as_json=st.booleans(),
    compress=st.booleans(),
    cuts=st.tuples(st.integers(0, 12), st.integers(0, 12)).map(sorted),
)
def test_ingested_spans_read_back_as_logfire_maps_them(
    srv: LocalLogfire, specs: list[SpanSpec], pieces: int, as_json: bool, compress: bool, cuts: list[int]
) -> None:
    service = f"prop-{next(_services)}"
    with httpx.Client(base_url=srv.base_url, timeout=30) as client:
        for index in range(pieces):
            request = trace_request(specs[index::pieces], service=service)
            body = otlp_json(request) if as_json else request.SerializeToString()
            answer = post(client, "/v1/traces", body, srv.write_token, as_json=as_json, compress=compress)
            assert answer.status_code == 200, answer.text
    # The window starts at one span's start and ends at another's (or past the last), so it cuts the data.
    starts = [*sorted(s.start_ns // 1000 for s in specs), LOW_NS // 1000 + 10**10 + 1]
    low_us, high_us = starts[min(cuts[0], len(starts) - 1)], starts[min(cuts[1], len(starts) - 1)]
    expected = [expected_row(s, service) for s in specs if low_us <= s.start_ns // 1000 < high_us]
    got = pl.read_logfire(
        f"SELECT * FROM records_all WHERE service_name = '{service}'",
        read_token=srv.read_token,
        base_url=srv.base_url,
        min_timestamp=datetime.fromtimestamp(low_us // 1_000_000, UTC).replace(microsecond=low_us % 1_000_000),
        max_timestamp=datetime.fromtimestamp(high_us // 1_000_000, UTC).replace(microsecond=high_us % 1_000_000),
        json_columns=None,
    )
    rows = {
        (r["trace_id"], r["span_id"]): {
            **{k: r[k] for k in expected_row(specs[0], service) if k in r and k != "attributes"},
            "attributes": json.loads(r["attributes"]),
            "start_us": _micros(r["start_timestamp"]),
            "end_us": _micros(r["end_timestamp"]),
        }
        for r in got.to_dicts()
    }
    assert len(rows) == got.height == len(expected)
    for row in expected:
        assert rows[(row["trace_id"], row["span_id"])] == row
