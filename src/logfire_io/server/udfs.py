"""Logfire's SQL functions as vectorised DataFusion UDFs.

Logfire runs ``datafusion-functions-json``; its Rust planner hooks cannot be registered from Python, so
:mod:`logfire_io.server.dialect` rewrites the operators into these functions. Each works on whole Arrow arrays:
a constant key (the usual ``attributes->>'http.route'``) goes through polars' JSONPath matcher in Rust; only a
key that varies per row, or an ambiguous numeric key, falls back to a Python loop.

Semantics (documented choices where Logfire's are unverified): ``->`` and ``->>`` both return text (strings
unquoted, other values as compact JSON text), so ``attributes->'a'->>'b'`` chains; a missing key, a JSON
``null`` or invalid JSON give SQL NULL; a numeric key indexes arrays.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf

import polars as pl
from logfire_io.schema import LEVEL_NAMES, LEVEL_NUMBERS
from logfire_io.server.metric_udfs import register_metric_udfs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["register_udfs"]

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_.\- /:$@{}\[\]]*$")
_MISSING = object()


def _constant_key(keys: pa.Array) -> str | None:
    """The key when every row uses the same one and it is safe inside a JSONPath string, else None."""
    if len(keys) == 0 or keys.null_count:
        return None
    first = keys[0].as_py()
    if not isinstance(first, str) or first.isdigit() or not _SIMPLE_KEY.match(first) or "'" in first:
        return None
    if len(keys) > 1 and not pc.all(pc.equal(keys, first)).as_py():
        return None
    return first


def _lookup(text: str | None, key: str | None) -> Any:
    """The JSON value at ``key`` in ``text``, or ``_MISSING``."""
    if text is None or key is None:
        return _MISSING
    try:
        value = json.loads(text)
    except ValueError:
        return _MISSING
    if isinstance(value, dict):
        return value.get(key, _MISSING)
    if isinstance(value, list) and key.lstrip("-").isdigit():
        index = int(key)
        return value[index] if -len(value) <= index < len(value) else _MISSING
    return _MISSING


def _as_text(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _matched_text(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    """Text of the value at ``keys`` in each JSON document (the ``->>`` operator)."""
    key = _constant_key(keys)
    if key is not None:
        return pl.Series(json_texts).str.json_path_match(f"$['{key}']").to_arrow().cast(pa.string())
    return pa.array(
        [_as_text(_lookup(t, k)) for t, k in zip(json_texts.to_pylist(), keys.to_pylist(), strict=True)],
        pa.string(),
    )


def _typed(json_texts: pa.Array, keys: pa.Array, check: Callable[[Any], bool], type_: pa.DataType) -> pa.Array:
    """The value at ``keys`` when it has the wanted JSON type, else NULL (the ``json_get_<type>`` family)."""
    key = _constant_key(keys)
    if key is not None and type_ != pa.string():
        matched = pl.Series(json_texts).str.json_path_match(f"$['{key}']")
        target = {pa.float64(): pl.Float64, pa.int64(): pl.Int64, pa.bool_(): pl.Boolean}[type_]
        if target == pl.Boolean:
            return matched.replace_strict({"true": True, "false": False}, default=None).to_arrow()
        return matched.cast(target, strict=False).to_arrow().cast(type_)
    values = (_lookup(t, k) for t, k in zip(json_texts.to_pylist(), keys.to_pylist(), strict=True))
    return pa.array([v if v is not _MISSING and check(v) else None for v in values], type_)


def _json_get_str(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    return _typed(json_texts, keys, lambda v: isinstance(v, str), pa.string())


def _json_get_int(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    return _typed(json_texts, keys, lambda v: isinstance(v, int) and not isinstance(v, bool), pa.int64())


def _json_get_float(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    return _typed(json_texts, keys, lambda v: isinstance(v, int | float) and not isinstance(v, bool), pa.float64())


def _json_get_bool(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    return _typed(json_texts, keys, lambda v: isinstance(v, bool), pa.bool_())


def _json_get_json(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    values = (_lookup(t, k) for t, k in zip(json_texts.to_pylist(), keys.to_pylist(), strict=True))
    return pa.array(
        [None if v is _MISSING else json.dumps(v, separators=(",", ":"), ensure_ascii=False) for v in values],
        pa.string(),
    )


def _json_contains(json_texts: pa.Array, keys: pa.Array) -> pa.Array:
    """Whether each document has ``key`` (the ``?`` operator); NULL documents give NULL."""
    found = pc.is_valid(_matched_text(json_texts, keys))
    # A key whose value is JSON null matches nothing above; look at the few candidate rows exactly.
    texts, key_list = json_texts.to_pylist(), keys.to_pylist()
    result = found.to_pylist()
    for i, (text, key) in enumerate(zip(texts, key_list, strict=True)):
        if text is None:
            result[i] = None
        elif not result[i] and key is not None and f'"{key}"' in text:
            result[i] = _lookup(text, key) is not _MISSING
    return pa.array(result, pa.bool_())


def _parsed(json_texts: pa.Array) -> list[Any]:
    out: list[Any] = []
    for text in json_texts.to_pylist():
        try:
            out.append(_MISSING if text is None else json.loads(text))
        except ValueError:
            out.append(_MISSING)
    return out


def _json_length(json_texts: pa.Array) -> pa.Array:
    return pa.array([len(v) if isinstance(v, dict | list) else None for v in _parsed(json_texts)], pa.uint64())


def _json_keys(json_texts: pa.Array) -> pa.Array:
    return pa.array([list(v) if isinstance(v, dict) else None for v in _parsed(json_texts)], pa.list_(pa.string()))


def _level_name(levels: pa.Array) -> pa.Array:
    names = pl.Series(levels).replace_strict(LEVEL_NAMES, default=None, return_dtype=pl.String)
    return names.to_arrow().cast(pa.string())


def _level_num(names: pa.Array) -> pa.Array:
    lowered = pl.Series(names).str.to_lowercase()
    return lowered.replace_strict(LEVEL_NUMBERS, default=None, return_dtype=pl.Int32).to_arrow()


_TEXT = pa.string()
_UDFS: list[tuple[str, Callable[..., pa.Array], list[pa.DataType], pa.DataType]] = [
    ("json_get", _matched_text, [_TEXT, _TEXT], _TEXT),
    ("json_as_text", _matched_text, [_TEXT, _TEXT], _TEXT),
    ("json_get_str", _json_get_str, [_TEXT, _TEXT], _TEXT),
    ("json_get_int", _json_get_int, [_TEXT, _TEXT], pa.int64()),
    ("json_get_float", _json_get_float, [_TEXT, _TEXT], pa.float64()),
    ("json_get_bool", _json_get_bool, [_TEXT, _TEXT], pa.bool_()),
    ("json_get_json", _json_get_json, [_TEXT, _TEXT], _TEXT),
    ("json_contains", _json_contains, [_TEXT, _TEXT], pa.bool_()),
    ("json_length", _json_length, [_TEXT], pa.uint64()),
    ("json_keys", _json_keys, [_TEXT], pa.list_(pa.string())),
    ("level_name", _level_name, [pa.int64()], _TEXT),
    ("level_num", _level_num, [_TEXT], pa.int32()),
]


def register_udfs(ctx: SessionContext) -> None:
    """Register Logfire's JSON and level functions on ``ctx``."""
    for name, func, inputs, output in _UDFS:
        ctx.register_udf(udf(func, inputs, output, "immutable", name))
    register_metric_udfs(ctx)
