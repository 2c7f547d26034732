"""JSON text columns to structs: exact under the documented rules, for arbitrary documents."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logfire_io
import polars as pl
from logfire_io import ConfigurationError, JSONDecodeWarning
from logfire_io._json import decode_json_array, decode_json_columns
from logfire_io.server import LocalLogfire
from tests.helpers import make_records
from tests.strategies import awkward_json_values, json_columns, json_objects


@dataclass(frozen=True)
class Text:
    """Expected: a string holding ``value``'s JSON text (``json.loads`` of it gives ``value`` back exactly)."""

    value: Any


Convert = Callable[[Any], Any]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _converter(values: list[Any]) -> tuple[Convert, bool]:
    """How the decoder must give back each of ``values`` (all the values of one key), and whether that, or anything
    inside it, is JSON text. This is the documented rule set, written naively from ``json.loads`` results."""
    present = [v for v in values if v is not None]
    kinds = {_kind(v) for v in present}

    def same(v: Any) -> Any:
        return v

    def text(v: Any) -> Any:
        return None if v is None else Text(v)

    if not kinds:
        return same, False
    if kinds <= {"int", "float"}:
        ints = [v for v in present if isinstance(v, int)]
        if kinds == {"int"} and all(-(2**63) <= v < 2**63 for v in ints):
            return same, False
        if all(abs(v) <= 2**53 for v in ints):  # float64 holds each of them exactly
            return (lambda v: None if v is None else float(v)), False
        return text, True
    if len(kinds) > 1:
        return text, True
    kind = kinds.pop()
    if kind == "object":
        keys = list(dict.fromkeys(k for v in present for k in v))
        fields = {k: _converter([v.get(k) for v in present]) for k in keys}
        has_text = any(inner_text for _, inner_text in fields.values())
        return (lambda v: None if v is None else {k: f(v.get(k)) for k, (f, _) in fields.items()}), has_text
    if kind == "list":
        inner, inner_text = _converter([item for v in present for item in v])
        if inner_text:  # a clash anywhere inside a list makes the whole list JSON text
            return text, True
        return (lambda v: None if v is None else [inner(i) for i in v]), False
    return same, False


def _depth(value: Any) -> int:
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(child) for child in children), default=0)
    return 0


def reference_decode(texts: list[str | None]) -> list[Any]:
    """The oracle: ``json.loads`` per row, then the rules. Raises ValueError where the decoder must refuse: rows
    that are not all objects or all arrays (JSON ``null`` reads as a null row), arrays whose items are JSON text
    under the rules, nesting deeper than 64 objects and lists, or a string UTF-8 cannot hold (an unpaired
    surrogate escape)."""
    try:
        documents = [None if t is None else json.loads(t) for t in texts]
        too_deep = any(_depth(d) > 64 for d in documents)
    except RecursionError:
        too_deep = True
    present = [d for d in documents if d is not None] if not too_deep else []
    kinds = {_kind(d) for d in present}
    convert, is_text = _converter(present)
    if too_deep or len(kinds) > 1 or (kinds == {"list"} and is_text) or not kinds <= {"object", "list"}:
        msg = "not all objects or all arrays, or too deep"
        raise ValueError(msg)
    json.dumps(documents, ensure_ascii=False).encode()  # UnicodeEncodeError (a ValueError) for lone surrogates
    return [None if d is None else convert(d) for d in documents]


def _identical(a: Any, b: Any) -> bool:
    """``a == b`` with types that must match too (``1`` is not ``1.0`` nor ``True``), and NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    return bool(a == b)


def _matches(decoded: Any, expected: Any) -> bool:
    """Whether a decoded value is what the oracle expects (a ``Text`` is checked by reading the text back)."""
    if isinstance(expected, Text):
        return isinstance(decoded, str) and _identical(json.loads(decoded), expected.value)
    if isinstance(expected, dict):
        return (
            isinstance(decoded, dict)
            and decoded.keys() == expected.keys()
            and all(_matches(decoded[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(decoded, list)
            and len(decoded) == len(expected)
            and all(_matches(d, e) for d, e in zip(decoded, expected, strict=True))
        )
    return _identical(decoded, expected)


def assert_decodes_exactly(texts: list[str | None]) -> None:
    """The column decoder gives what the oracle gives, row by row; and refuses exactly when the oracle refuses."""
    try:
        expected = reference_decode(texts)
    except ValueError:
        with pytest.raises(ValueError):  # any refusal (invalid JSON, not objects) is right
            decode_json_array(pa.array(texts, pa.string()))
        return
    decoded = decode_json_array(pa.array(texts, pa.string())).to_pylist()
    assert len(decoded) == len(expected)
    for row, (got, want) in enumerate(zip(decoded, expected, strict=True)):
        assert _matches(got, want), f"row {row}: {texts[row]!r} decoded as {got!r}, expected {want!r}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), json_objects), min_size=1, max_size=12))
def test_decoding_follows_the_rules(documents: list[dict | None]) -> None:
    assert_decodes_exactly([None if d is None else orjson.dumps(d).decode() for d in documents])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.none(), st.lists(awkward_json_values, max_size=3).map(json.dumps)), min_size=1, max_size=6)
)
def test_array_columns_decode_exactly(texts: list[str | None]) -> None:
    """Columns of JSON arrays (``otel_events``): lists of the union type, or refused when their items clash."""
    assert_decodes_exactly(texts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_columns, st.integers(1, 40))
def test_awkward_columns_decode_exactly(texts: list[str | None], copies: int) -> None:
    """Clashes, date-like strings in lists, quoted keys, huge integers, NaN, repeated keys, pretty-printing; the
    copies make clashing keys common enough for the vectorised clash path."""
    assert_decodes_exactly(texts * copies)


def test_late_key_mixed_types_and_dotted_keys_kept() -> None:
    rows = ['{"a": 1}'] * 500 + ['{"a": "u-1", "late.key": {"x": [1, 2]}}', None, "{}"]
    decoded = decode_json_array(pa.array(rows)).to_pylist()
    assert decoded[0] == {"a": "1", "late.key": None}
    assert decoded[500] == {"a": '"u-1"', "late.key": {"x": [1, 2]}}
    assert decoded[501] is None
    assert decoded[502] == {"a": None, "late.key": None}
    assert json.loads(decoded[500]["a"]) == "u-1"


@pytest.mark.parametrize(
    "document",
    [
        {"dob": "1990-03-14"},
        {"result": {"dob": "1990-03-14T10:00:00", "name": "Ada"}},
        {"dates": ["2020-01-01", "2021-02-03 04:05:06"]},
        {"it's": {"when": "2020-01-01"}},
        {"a": [{"b": "2020-01-01"}]},
    ],
)
def test_iso_date_strings_stay_strings(document: dict) -> None:
    rows = [orjson.dumps(document).decode(), None, "{}"]
    decoded = decode_json_array(pa.array(rows)).to_pylist()
    assert decoded[0] == document
    assert decoded[1] is None


def test_pretty_printed_documents() -> None:
    assert decode_json_array(pa.array(['{\n  "a": {\n    "b": 1\n  }\n}'])).to_pylist() == [{"a": {"b": 1}}]


def test_invalid_json_keeps_text_with_warning() -> None:
    table = pa.table({"attributes": ['{"a": 1}', "not json"], "log_body": ["plain text", '{"x": 1}']})
    with pytest.warns(JSONDecodeWarning, match="'attributes' was left as text"):
        out = decode_json_columns(table, "auto")
    assert out.column("attributes").type == pa.string()
    assert out.column("log_body").type == pa.string()  # plain-text bodies: silently left as text


def test_explicit_dtypes_and_unknown_columns() -> None:
    import polars as pl
    from logfire_io import ConfigurationError

    table = pa.table({"attributes": ['{"a": 1, "b": "x"}']})
    out = decode_json_columns(table, {"attributes": pl.Struct({"a": pl.Int32})})
    assert out.column("attributes").to_pylist() == [{"a": 1}]
    with pytest.raises(ConfigurationError, match="does not have"):
        decode_json_columns(table, ["nope"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_json_columns(table, None).equals(table)


def test_clashing_top_level_scalars_mixed_with_awkward_rows() -> None:
    documents = [
        {"user_id": 42, "x": 1},
        {"user_id": "u-42"},
        {"user_id": 'say "hi"\\ é'},
        {"user_id": 1.5e300},
        {"user_id": True},
        {"user_id": None},
        {"user_id": {"nested": 1}},  # an object: handled row by row
        {"other": {"user_id": "inner"}, "user_id": 7},  # the key twice: handled row by row
        {"other": {"user_id": "only nested"}},
        {},
    ]
    rows = [orjson.dumps(d).decode() for d in documents] * 300
    decoded = decode_json_array(pa.array(rows)).to_pylist()[: len(documents)]
    assert [d["user_id"] for d in decoded] == [
        "42",
        '"u-42"',
        orjson.dumps('say "hi"\\ é').decode(),
        orjson.dumps(1.5e300).decode(),
        "true",
        None,
        '{"nested":1}',
        "7",
        None,
        None,
    ]
    assert decoded[7]["other"] == {"user_id": "inner"}
    assert decoded[8]["other"] == {"user_id": "only nested"}


def test_nested_clash_then_enclosing_clash() -> None:
    documents = [{"user": {"id": 1, "plan": "pro"}}, {"user": {"id": "u-2"}}, {"user": "anonymous"}, {"user": None}]
    rows = [orjson.dumps(d).decode() for d in documents] * 200
    decoded = decode_json_array(pa.array(rows)).to_pylist()[:4]
    assert [d["user"] for d in decoded] == [
        '{"id":1,"plan":"pro"}',
        '{"id":"u-2"}',
        '"anonymous"',
        None,
    ]


def test_nested_scalar_clash() -> None:
    documents = [{"user": {"id": 1, "plan": "pro"}}, {"user": {"id": "u-2"}}, {"user": None}, {"id": "top"}]
    rows = [orjson.dumps(d).decode() for d in documents] * 200
    decoded = decode_json_array(pa.array(rows)).to_pylist()[:4]
    assert decoded == [
        {"user": {"id": "1", "plan": "pro"}, "id": None},
        {"user": {"id": '"u-2"', "plan": None}, "id": None},
        {"user": None, "id": None},
        {"user": None, "id": "top"},
    ]


@pytest.mark.parametrize(
    "other_row",
    [{"dates": ["2020-01-01"]}, {"it's": "2020-01-01"}, {"back\\slash": {"when": "2021-02-03 04:05:06"}}],
    ids=["date-in-list", "key-with-quote", "key-with-backslash"],
)
def test_10_clash_survives_the_timestamp_text_restore(other_row: dict) -> None:
    """Issue 10: the date-text restore re-read the column and discarded the clash fix-ups (the ids came back NULL)."""
    rows = ['{"user_id": 42}', '{"user_id": "u-7"}', orjson.dumps(other_row).decode()] * 50
    decoded = decode_json_array(pa.array(rows)).to_pylist()
    assert [d["user_id"] for d in decoded[:3]] == ["42", '"u-7"', None]
    assert {k: v for k, v in decoded[2].items() if k != "user_id"} == other_row


def test_10_huge_integer_inside_json_text_keeps_its_digits() -> None:
    """Issue 10: an integer beyond int64 inside a value kept as JSON text came back as ``1.2345678901234568e+22``."""
    rows = ['{"u": {"x": 12345678901234567890123}}', '{"u": "u-7"}', '{"u": [-98765432109876543210, 1.5]}'] * 50
    decoded = decode_json_array(pa.array(rows)).to_pylist()
    assert [json.loads(d["u"]) for d in decoded[:3]] == [
        {"x": 12345678901234567890123},
        "u-7",
        [-98765432109876543210, 1.5],
    ]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (['{"n": 12345678901234567890123}'], ["12345678901234567890123"]),
        (['{"n": -9223372036854775809}', '{"n": 1}'], ["-9223372036854775809", "1"]),
        (['{"n": 9007199254740993}', '{"n": 0.5}'], ["9007199254740993", "0.5"]),
        (['{"n": [9007199254740993, 0.5]}'], ["[9007199254740993,0.5]"]),
        (['{"n": [{"m": 9007199254740993}]}', '{"n": [{"m": 0.5}]}'], ['[{"m":9007199254740993}]', '[{"m":0.5}]']),
        (
            ['{"n": 12345678901234567890123}', '{"\\u006e": -12345678901234567890123}'],
            ["12345678901234567890123", "-12345678901234567890123"],
        ),
    ],
    ids=[
        "beyond-int64",
        "below-int64",
        "beyond-2**53-with-fractions",
        "in-a-list",
        "in-a-list-of-objects",
        "key-spelled-with-escapes",
    ],
)
def test_10_integers_float64_cannot_hold_are_json_text(rows: list[str], expected: list[str]) -> None:
    """Issue 10: Arrow's reader silently made these floats (and lost digits); they are JSON text, digits kept."""
    decoded = decode_json_array(pa.array(rows)).to_pylist()
    assert all(isinstance(d["n"], str) for d in decoded)
    assert [json.loads(d["n"]) for d in decoded] == [json.loads(e) for e in expected]


def test_integers_float64_holds_exactly_become_floats_beside_fractions() -> None:
    decoded = decode_json_array(pa.array(['{"n": 9007199254740992}', '{"n": 0.5}', '{"n": -3}'])).to_pylist()
    assert [d["n"] for d in decoded] == [9007199254740992.0, 0.5, -3.0]
    assert all(type(d["n"]) is float for d in decoded)


def test_date_like_string_in_a_list_of_lists_stays_a_string() -> None:
    """Found by the oracle: a timestamp two lists deep was not seen, so the restore skipped it."""
    assert decode_json_array(pa.array(['{"id": [["2020-01-01"]]}'])).to_pylist() == [{"id": [["2020-01-01"]]}]


def test_repeated_key_whose_discarded_value_clashes() -> None:
    """Found by the oracle: the clash was in the first of two values of one key; JSON readers keep the last."""
    rows = ['{"id": [false, 0], "id": []}', '{"id": [1]}']
    assert decode_json_array(pa.array(rows)).to_pylist() == [{"id": []}, {"id": [1]}]


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (['{"a": -NaN}', '{"a": 1}'], "Expecting value"),  # Arrow's reader takes it; Python's refuses, not JSON
        (['{"a": [Inf]}', '{"a": [1]}'], "Expecting value"),
        (['{"a": -Inf}'], "Expecting value"),
        (['{"a": "\\ud800"}'], "unpaired surrogate"),  # no UTF-8 text holds it
        (['{"\\udc00": 1}'], "unpaired surrogate"),
        (['{"a":' * 65 + "1" + "}" * 65], "nested deeper than 64"),
        (['{"a":' + "[" * 3000 + "]" * 3000 + "}"], "nested deeper than 64"),  # deeper than Python's reader goes
        (['{"a": 1}} {"v": {"a": 2}', '{"a": 3}'], "Extra data"),  # two documents in one value, once wrapped
    ],
    ids=[
        "negative-nan",
        "inf",
        "negative-inf",
        "lone-surrogate",
        "lone-surrogate-key",
        "deep",
        "very-deep",
        "two-documents",
    ],
)
def test_values_json_loads_refuses_or_arrow_cannot_hold_leave_the_column_as_text(rows: list[str], reason: str) -> None:
    """Found trying to break the decoder: these escaped as raw errors or decoded what Python's reader refuses."""
    with pytest.raises(ValueError, match=reason):
        decode_json_array(pa.array(rows))
    with pytest.warns(JSONDecodeWarning, match=f"'attributes' was left as text: .*{reason}"):
        out = decode_json_columns(pa.table({"attributes": rows}))
    assert out.column("attributes").to_pylist() == rows


def test_key_spelled_with_escapes_keeps_its_date_text() -> None:
    """Found trying to break the decoder: ``{"\\u0061": "2020-01-01"}`` came back ``{"a": None}``."""
    rows = ['{"\\u0061": "2020-01-01", "b": {"\\u00e9": "2021-02-03 04:05:06"}}', '{"a": "2022-01-01"}']
    assert decode_json_array(pa.array(rows)).to_pylist() == [
        {"a": "2020-01-01", "b": {"é": "2021-02-03 04:05:06"}},
        {"a": "2022-01-01", "b": None},
    ]


def test_nesting_at_the_limit_decodes() -> None:
    rows = ['{"a":' * 64 + "1" + "}" * 64]
    assert decode_json_array(pa.array(rows)).to_pylist() == [json.loads(rows[0])]


def test_awkward_attributes_read_through_the_local_server_decode_exactly() -> None:
    """End to end: the regression shapes stored as text by the local server, read back by the reader."""
    rows = [
        '{"user_id": 42, "cost": 0.5}',
        '{"user_id": "u-7", "dates": ["2020-01-01"], "it\'s": "2021-02-03 04:05:06"}',
        '{"user_id": {"x": 12345678901234567890123}, "cost": 9007199254740993, "n": NaN}',
        '{"\\u0061": [1, 2.5], "user": {"id": 1}}',
        None,
        '{"user": {"id": "u-2"}, "a": [3]}',
    ] * 20
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = make_records([start + timedelta(seconds=i) for i in range(len(rows))], attributes=rows)
    with LocalLogfire(records=records, workers=1) as srv:
        table = logfire_io.read_logfire_arrow(
            "SELECT attributes FROM records ORDER BY span_id",
            read_token=srv.read_token,
            base_url=srv.base_url,
            min_timestamp=start,
            progress=False,
        )
    expected = reference_decode(rows)
    decoded = table.column("attributes").to_pylist()
    assert len(decoded) == len(rows)
    assert all(_matches(got, want) for got, want in zip(decoded, expected, strict=True))
    assert decoded[2]["user_id"] == '{"x":12345678901234567890123}'


def test_date_text_restored_in_rows_polars_json_path_cannot_read() -> None:
    """Found by the oracle: polars' JSONPath refuses a row holding ``Infinity``, so its date came back None."""
    rows = ['{"id": {"n": Infinity, "user": "2020-01-01"}}', '{"id": {"n": NaN, "user": "2021-02-03"}}']
    assert decode_json_array(pa.array(rows)).to_pylist()[0]["id"]["user"] == "2020-01-01"
    assert_decodes_exactly(rows)


def test_deep_chain_of_lists_is_refused_quickly() -> None:
    """Found trying to break the decoder: Arrow's reader takes quadratic time on nested lists (10 s for 3,000
    levels in 6 kB; minutes for this one), before the depth rule refuses them."""
    rows = ['{"a":' + "[" * 20_000 + "]" * 20_000 + "}", '{"a": [1]}']
    started = time.perf_counter()
    with pytest.raises(ValueError, match="nested deeper than 64"):
        decode_json_array(pa.array(rows))
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("value", ['"u-7"', '"2020-01-01"', "7"])
def test_clashing_key_spelled_with_escapes_in_one_row(value: str) -> None:
    """Found by the oracle: the row spelling the key ``"\\u00e9"`` was not rewritten, the clash then vanished, and
    its value came back raw (``u-7``) instead of as JSON text."""
    rows = ['{"\\u00e9": ' + value + "}", '{"é": []}']
    assert decode_json_array(pa.array(rows)).to_pylist() == [{"é": value}, {"é": "[]"}]


def test_clash_where_the_key_is_spelled_plainly_elsewhere_in_the_row() -> None:
    """Found reading the vectorised clash path: the one plain ``"key":`` in the row belonged to another object, so
    its value was taken as the clashing one's text, and nulled."""
    rows = ['{"other": {"key": 1}, "a": {"k\\u0065y": "x"}}', '{"a": {"key": 2}}'] * 3
    assert decode_json_array(pa.array(rows)).to_pylist()[:2] == [
        {"other": {"key": 1}, "a": {"key": '"x"'}},
        {"other": None, "a": {"key": "2"}},
    ]


def test_arrays_holding_integers_float64_cannot_hold() -> None:
    """Found trying to break the decoder: a column of JSON arrays (like ``otel_events``) with such an integer
    beside fractions raised a raw IndexError; the lists are kept, as the rules keep any list, only if exact."""
    rows = ['[{"name": "b", "n": 9007199254740993}, {"n": 0.5}]', '[{"name": "a"}]']
    with pytest.raises(ValueError, match="not all JSON objects or all JSON arrays"):
        decode_json_array(pa.array(rows))
    with pytest.warns(JSONDecodeWarning, match="'otel_events' was left as text"):
        out = decode_json_columns(pa.table({"otel_events": rows}))
    assert out.column("otel_events").to_pylist() == rows
    exact = ['[{"name": "b", "n": 9007199254740992}, {"n": 0.5}]', '[{"name": "a"}]']
    assert decode_json_array(pa.array(exact)).to_pylist() == [
        [{"name": "b", "n": 9007199254740992.0}, {"name": None, "n": 0.5}],
        [{"name": "a", "n": None}],
    ]


def test_13_a_dtype_the_json_does_not_fit_is_a_configuration_error() -> None:
    table = pa.table({"attributes": ['{"a": 1}', '{"a": "x"}']})
    with pytest.raises(ConfigurationError, match="`json_columns` gives 'attributes' the dtype Int64"):
        decode_json_columns(table, {"attributes": pl.Int64})
