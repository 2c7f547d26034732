"""Logfire's SQL functions as vectorised DataFusion UDFs.

Logfire runs ``datafusion-functions-json``; its Rust planner hooks cannot be registered from Python, and a
Python UDF has one exact signature, so :mod:`logfire_io.server.dialect` rewrites every JSON operator and JSON
function call into ``name(json, path)``: ``path`` is the key path as the text of a JSON array (``'["user",
"plan"]'``, ``'[0]'``, ``'[]'``), computed at run time when a key is a column. Each function works on whole Arrow
arrays: a path of object keys (the usual ``attributes->>'http.route'``, ``attributes->'user'->>'plan'``) is
answered by polars' string kernels in Rust wherever that is provably the exact answer (see :func:`_fast`);
every other row, and every other path, goes through an exact JSON walker in Python (:func:`_locate`).

Semantics, from ``datafusion-functions-json``'s sources (``src/common.rs``, ``json_as_text.rs``,
``json_get_int.rs``, ``json_contains.rs``, ``rewrite.rs``; read with the search tool, not run against Logfire):

- A path step is a string key (on an object: the FIRST member with that name) or an integer index (on an
  array; a negative index counts from the end). A string key that reaches an array is used as an index when
  it spells an integer (as PostgreSQL's path operators do). Any other step finds nothing.
- Nothing found, a SQL NULL document, invalid JSON or a NULL key give SQL NULL, except ``json_contains``,
  which gives ``false`` for a NULL document or a missing path (and NULL for a NULL key).
- ``json_as_text`` (``->>``): a string value unquoted, JSON ``null`` as NULL, anything else as its JSON text
  exactly as written in the document (``1.50`` stays ``1.50``).
- ``json_get_str``: strings only. ``json_get_int``: integers that fit in int64 only (``1.0``, ``"1"`` and
  big integers give NULL). ``json_get_float``: any number, integers converted. ``json_get_bool``: ``true`` and
  ``false`` only. ``json_get_json``: the value's JSON text as written (strings keep their quotes; ``null`` is
  ``'null'``). ``json_length``: the number of elements or members of an array or object, else NULL (uint64).
  ``json_keys`` (alias ``json_object_keys``): an object's member names in document order, else NULL.
- ``json_get`` (``->``) returns Logfire's JSON union, whose wire form is unverified; here it is text, as
  ``json_as_text``. ``x->'a'->'b'`` is one path lookup (the rewrite flattens ``->`` chains as Logfire's
  planner does), so a string value holding JSON is never parsed again; ``x->>'a'->>'b'`` parses the text.

Unverified (Logfire's version of the crate is unknown): negative indices and string keys used as indices
(recent versions only); a document with a syntax error after the value (jiter reads lazily and may find it;
here an invalid document has no values, as polars' JSONPath also answers); duplicate member names in
``json_length``/``json_keys`` (counted once here).
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
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

Path = tuple[str | int, ...]

_DECODER = json.JSONDecoder(strict=False)
_SPACE = re.compile(r"[ \t\n\r]*")
_INDEX = re.compile(r"[+-]?\d+")
_JSON_INT = re.compile(r"-?(?:0|[1-9]\d*)")
_FAST_KEY = re.compile(r"^[A-Za-z0-9_.\- /:$@{}]*$")
_INT64 = (-(2**63), 2**63 - 1)


def _skip(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    return match.end() if match else position


def _member(text: str, position: int, key: str) -> int | None:
    """Where the value of the first member ``key`` of the object at ``position`` starts, or None."""
    position = _skip(text, position + 1)
    if text[position] == "}":
        return None
    while True:
        if text[position] != '"':
            return None
        name, position = scanstring(text, position + 1, False)
        position = _skip(text, position)
        if text[position] != ":":
            return None
        position = _skip(text, position + 1)
        if name == key:
            return position
        position = _skip(text, _DECODER.raw_decode(text, position)[1])
        if text[position] != ",":
            return None
        position = _skip(text, position + 1)


def _element(text: str, position: int, index: int) -> int | None:
    """Where element ``index`` of the array at ``position`` starts, or None."""
    if index < 0:
        index += len(_DECODER.raw_decode(text, position)[0])
        if index < 0:
            return None
    position = _skip(text, position + 1)
    if text[position] == "]":
        return None
    for _ in range(index):
        position = _skip(text, _DECODER.raw_decode(text, position)[1])
        if text[position] != ",":
            return None
        position = _skip(text, position + 1)
    return position


def _locate(text: str | None, path: Path | None) -> str | None:
    """The JSON text, as written, of the value at ``path`` in ``text``; None when there is none."""
    if text is None or path is None:
        return None
    try:
        _DECODER.decode(text)  # an invalid document has no values, whichever path reaches them first
        position = _skip(text, 0)
        for step in path:
            head = text[position]
            found: int | None = None
            if head == "{" and isinstance(step, str):
                found = _member(text, position, step)
            elif head == "[" and isinstance(step, int):
                found = _element(text, position, step)
            elif head == "[" and _INDEX.fullmatch(step := str(step)):
                found = _element(text, position, int(step))
            if found is None:
                return None
            position = found
        end = _DECODER.raw_decode(text, position)[1]
    except (ValueError, IndexError):
        return None
    return text[position:end]


def _as_text(raw: str) -> Any:
    return None if raw == "null" else json.loads(raw, strict=False) if raw[0] == '"' else raw


def _as_int(raw: str) -> Any:
    if _JSON_INT.fullmatch(raw) and _INT64[0] <= (value := int(raw)) <= _INT64[1]:
        return value
    return None


def _as_float(raw: str) -> Any:
    return float(raw) if raw[0] == "-" or raw[0].isdigit() else None


def _as_keys(raw: str) -> Any:
    if raw[0] != "{":
        return None
    return list(dict.fromkeys(k for k, _ in json.loads(raw, object_pairs_hook=lambda pairs: pairs)))


_CONVERT: dict[str, Callable[[str], Any]] = {
    "json_get": _as_text,
    "json_as_text": _as_text,
    "json_get_str": lambda raw: json.loads(raw, strict=False) if raw[0] == '"' else None,
    "json_get_int": _as_int,
    "json_get_float": _as_float,
    "json_get_bool": lambda raw: {"true": True, "false": False}.get(raw),
    "json_get_json": lambda raw: raw,
    "json_length": lambda raw: len(json.loads(raw)) if raw[0] in "[{" else None,
    "json_keys": _as_keys,
}
_TYPES: dict[str, pa.DataType] = {
    "json_get": pa.string(),
    "json_as_text": pa.string(),
    "json_get_str": pa.string(),
    "json_get_int": pa.int64(),
    "json_get_float": pa.float64(),
    "json_get_bool": pa.bool_(),
    "json_get_json": pa.string(),
    "json_length": pa.uint64(),
    "json_keys": pa.list_(pa.string()),
    "json_contains": pa.bool_(),
}


def _path(text: str | None) -> Path | None:
    """A path from the text the rewrite passes; None (no match) for NULL or malformed text."""
    if text is None:
        return None
    try:
        steps = json.loads(text, strict=False)
    except ValueError:
        return None
    if not isinstance(steps, list) or not all(isinstance(s, str | int) and not isinstance(s, bool) for s in steps):
        return None
    return tuple(steps)


def _exact(name: str, text: str | None, path: Path | None) -> Any:
    """One row of ``name``, computed by walking the document."""
    raw = _locate(text, path)
    if name == "json_contains":
        return None if path is None else raw is not None
    return None if raw is None else _CONVERT[name](raw)


def _fast(name: str, texts: pl.Series, keys: tuple[str, ...]) -> tuple[pl.Series, pl.Series] | None:
    r"""The answer for a path of object keys from polars' kernels, and which rows still need :func:`_exact`.

    A row is answered here only when each key's quoted name occurs exactly once in the document and the
    document has no ``\u`` escape (so no other spelling of a name): the members polars' JSONPath finds are
    then the only ones (no duplicates), and the character after the last key's ``:`` is the value's JSON
    type. A document lacking one of the names has no value at the path.
    """
    if name in ("json_get_json", "json_length", "json_keys"):
        return None
    needles = [json.dumps(key) for key in keys]
    counts = [pl.col("t").str.count_matches(needle, literal=True) for needle in needles]
    frame = pl.DataFrame({"t": texts}).with_columns(
        least=pl.min_horizontal(counts),
        most=pl.max_horizontal(counts),
        escaped=pl.col("t").str.contains("\\u", literal=True),
        match=pl.col("t").str.json_path_match("$" + "".join(f"['{key}']" for key in keys)),
    )
    if name not in ("json_get", "json_as_text"):  # the text of a value does not depend on its type but here
        frame = frame.with_columns(head=pl.col("t").str.extract(re.escape(needles[-1]) + r"\s*:\s*(.)", 1))
    head, match = pl.col("head").fill_null(""), pl.col("match")
    number = head.is_in(list("-0123456789"))
    single = (pl.col("most") == 1) & ~pl.col("escaped")
    absent = ((pl.col("least") == 0) & ~pl.col("escaped")) | pl.col("t").is_null()
    if name in ("json_get", "json_as_text"):
        # polars re-prints objects, arrays and non-integral numbers; any other value's text is the same
        # whether it was a string or not ("42" and 42 both read 42), so only those need the walker.
        reprinted = match.str.contains(r"^[\[{]") | (
            match.str.contains(r"^-?[\d.eE+-]+$") & ~match.str.contains(r"^-?\d+$")
        )
        known = match.is_null() | ~reprinted
        value: pl.Expr = match
    elif name == "json_get_str":
        known, value = pl.lit(True), pl.when(head == '"').then(match)
    elif name == "json_get_int":
        known, value = pl.lit(True), pl.when(number).then(match.cast(pl.Int64, strict=False))
    elif name == "json_get_float":
        known, value = pl.lit(True), pl.when(number).then(match.cast(pl.Float64, strict=False))
    elif name == "json_get_bool":
        boolean = pl.when((head == "t") & (match == "true")).then(True)
        known, value = pl.lit(True), boolean.when((head == "f") & (match == "false")).then(False)
    else:  # json_contains; a JSON null member has no JSONPath match, so it is left to the walker
        known = match.is_not_null() | (head != "n")
        value = match.is_not_null()
    if name == "json_contains":
        value = pl.when(absent).then(False).otherwise(value)
    else:
        value = pl.when(absent).then(None).otherwise(value)
    answer = frame.select(value=value, exact=absent | (single & known))
    return answer["value"], ~answer["exact"]


def _json_function(name: str) -> Callable[[pa.Array, pa.Array], pa.Array]:
    """The vectorised UDF body of JSON function ``name(json, path)``."""
    type_ = _TYPES[name]

    def run(texts: pa.Array, path_texts: pa.Array) -> pa.Array:
        distinct = pc.unique(path_texts)
        paths = {p: _path(p) for p in distinct.to_pylist()}
        constant = paths[distinct[0].as_py()] if len(distinct) == 1 else None
        fast = None
        # A key spelling an integer also indexes arrays, which the member search of _fast does not see.
        if constant and all(isinstance(k, str) and _FAST_KEY.match(k) and not _INDEX.fullmatch(k) for k in constant):
            fast = _fast(name, pl.Series(texts), tuple(str(k) for k in constant))
        if fast is None:
            pairs = zip(texts.to_pylist(), path_texts.to_pylist(), strict=True)
            return pa.array([_exact(name, t, paths[p]) for t, p in pairs], type_)
        values, pending = fast
        rows = pending.arg_true()
        if len(rows):
            left = pc.take(texts, pa.array(rows.to_numpy())).to_pylist()
            values = values.scatter(rows, pl.Series([_exact(name, t, constant) for t in left], dtype=values.dtype))
        return values.to_arrow().cast(type_)

    return run


def _level_name(levels: pa.Array) -> pa.Array:
    names = pl.Series(levels).replace_strict(LEVEL_NAMES, default=None, return_dtype=pl.String)
    return names.to_arrow().cast(pa.string())


def _level_num(names: pa.Array) -> pa.Array:
    lowered = pl.Series(names).str.to_lowercase()
    return lowered.replace_strict(LEVEL_NUMBERS, default=None, return_dtype=pl.Int32).to_arrow()


_TEXT = pa.string()


def register_udfs(ctx: SessionContext) -> None:
    """Register Logfire's JSON and level functions on ``ctx`` (the JSON ones take the rewritten path form)."""
    for name, type_ in _TYPES.items():
        ctx.register_udf(udf(_json_function(name), [_TEXT, _TEXT], type_, "immutable", name))
        if name == "json_keys":
            ctx.register_udf(udf(_json_function(name), [_TEXT, _TEXT], type_, "immutable", "json_object_keys"))
    ctx.register_udf(udf(_level_name, [pa.int64()], _TEXT, "immutable", "level_name"))
    ctx.register_udf(udf(_level_num, [_TEXT], pa.int32(), "immutable", "level_num"))
    register_metric_udfs(ctx)
