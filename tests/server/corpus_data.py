"""The small records table the dialect corpora run on: varied values, and JSON documents chosen for edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa

from tests.helpers import make_records

__all__ = ["ARROW", "DOCUMENTS", "KEYS", "START", "corpus_records", "post_arrow"]

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ARROW = "application/vnd.apache.arrow.stream"

DOCUMENTS: list[str | None] = [
    json.dumps(
        {"s": "GET", "n": 200, "f": 1.5, "t": True, "o": {"a": "x", "b": [10, 20, 30]}, "arr": [1, "two", None]}
    ),
    '{"s":"POST","n":-7,"f":2,"t":false,"o":{"a":"y","b":[]},"arr":[],"nul":null}',
    '{"s": "42", "n": 1.0, "f": 1.50, "big": 123456789012345678901234, "js": "{\\"x\\": 1}", "o": {"a": null}}',
    json.dumps({"ünï": "code", "quote's": "q", "k.with.dots": {"deep": [{"z": "last"}]}, "arr": [[1, 2], {"a": 1}]}),
    '{"arr": [5, 6, 7], "s": "o\\"k", "n": 9223372036854775807, "t": "true", "o": "not an object"}',
    json.dumps({"s": None, "n": "12", "f": "1.5", "o": {"a": "z", "b": [1]}, "arr": {"0": "zero"}}),
    "[1, 2, 3]",
    '"just a string"',
    "not json",
    None,
    json.dumps({"s": "GET", "n": 0, "o": {"b": [None, True]}, "t": True, "nul": None, "arr": [True]}),
    json.dumps({"s": "", "n": 3, "f": -0.25, "o": {"a": "x", "b": [3, 2, 1]}, "arr": [1, 2], "js": "[1, 2]"}),
]
"""Attributes per row: objects, arrays, scalars, invalid text and NULL; clashing types for one key across rows."""

KEYS = ["s", "n", "o", "arr", "missing", "s", "f", "t", "js", "nul", "o", "ünï"]
"""A key per row, held in ``span_name``, for queries whose key is a column."""


def corpus_records() -> pa.Table:
    """One row per document, a microsecond apart, with varied values in the other columns."""
    n = len(DOCUMENTS)
    times = [START + timedelta(minutes=7 * i, microseconds=i) for i in range(n)]
    return make_records(
        times,
        end_timestamp=[t + timedelta(milliseconds=13 * i + 1) for i, t in enumerate(times)],
        duration=[0.013 * i + 0.001 if i % 5 else None for i in range(n)],
        message=[f"{i}" for i in range(n)],
        span_name=KEYS,
        attributes=DOCUMENTS,
        level=[1, 5, 9, 9, 13, 17, 21, 9, 10, 13, 9, 5],
        tags=[["a", "b"], [], None, ["c"], ["a"], ["b", "a"], None, [], ["x"], ["a", "c"], ["b"], []],
        is_exception=[i % 3 == 0 if i % 4 else None for i in range(n)],
        http_response_status_code=[200, 404, None, 500, 201, 200, 302, None, 200, 503, 200, 204],
        kind=["span", "log"] * (n // 2),
    )


def post_arrow(http: httpx.Client, sql: str) -> pa.Table | str:
    """The Arrow answer of the server's ``/v2/query`` for ``sql``, or the error it answered with."""
    body = {"sql": sql, "min_timestamp": "2020-01-01T00:00:00Z", "limit": 10_000}
    response = http.post("/v2/query", json=body, headers={"accept": ARROW})
    if response.status_code != 200:
        return f"{response.status_code}: {response.json()['detail']}"
    return pa.ipc.open_stream(response.content).read_all()
