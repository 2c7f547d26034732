"""JSON text columns to structs: exact under the documented rules, for arbitrary documents."""

from __future__ import annotations

import json
import warnings
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logfire_io import JSONDecodeWarning
from logfire_io._json import decode_json_array, decode_json_columns
from tests.strategies import json_objects


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _expected(documents: list[dict | None]) -> list[dict | None]:
    """What the rules promise, computed independently and naively from the parsed documents."""

    def merge(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        kinds = {_kind(v) for v in present}
        if not present:
            return lambda v: None
        if len(kinds) > 1:
            return lambda v: None if v is None else orjson.dumps(v).decode()
        kind = kinds.pop()
        if kind == "object":
            keys = list(dict.fromkeys(k for v in present for k in v))
            fields = {k: merge([v.get(k) for v in present]) for k in keys}
            return lambda v: None if v is None else {k: fields[k](v.get(k)) for k in keys}
        if kind == "list":
            items = [item for v in present for item in v]
            item_kinds = {_kind(i) for i in items if i is not None}
            if len(item_kinds) > 1 or ((item_kinds == {"list"} or item_kinds == {"object"}) and _clashes(items)):
                return lambda v: None if v is None else orjson.dumps(v).decode()
            inner = merge(items)
            return lambda v: None if v is None else [inner(i) for i in v]
        if kind == "number" and any(isinstance(v, float) or abs(v) >= 2**63 for v in present):
            return lambda v: None if v is None else float(v)
        return lambda v: v

    convert = merge([d for d in documents])
    return [convert(d) for d in documents]


def _clashes(values: list[Any]) -> bool:
    """Whether nested values clash somewhere (then the enclosing list is kept as JSON text)."""
    kinds = {_kind(v) for v in values if v is not None}
    if len(kinds) > 1:
        return True
    if kinds == {"object"}:
        keys = {k for v in values if v is not None for k in v}
        return any(_clashes([v.get(k) for v in values if v is not None]) for k in keys)
    if kinds == {"list"}:
        return _clashes([i for v in values if v is not None for i in v])
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), json_objects), min_size=1, max_size=12))
def test_decoding_follows_the_rules(documents: list[dict | None]) -> None:
    texts = pa.array([None if d is None else orjson.dumps(d).decode() for d in documents], pa.string())
    decoded = decode_json_array(texts).to_pylist()
    expected = _expected(documents)
    assert len(decoded) == len(expected)
    assert decoded == expected


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
