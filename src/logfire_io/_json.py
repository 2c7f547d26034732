"""Decode JSON-string columns (``attributes``, ``otel_events``...) into Arrow structs and lists, exactly.

Logfire returns JSON columns as text in Arrow. Decoding must not guess from the first rows: the schema is the
union over every row, found by Arrow's C++ JSON reader over the whole column at once. The rules:

- An object becomes a struct with one field per key seen in any row; a key missing from a row is null there
  (so a missing key and an explicit JSON ``null`` read the same). Dotted keys (``http.method``) stay literal.
- A SQL NULL stays a null struct; ``{}`` is a struct whose fields are all null.
- Integers stay ``int64`` unless the same key also holds fractions in some row, then all are ``float64``;
  integers beyond the int64 range are read as ``float64`` (as most JSON parsers do).
- A key whose values have different JSON types across rows (``1`` here, ``"u-1"`` there, an object elsewhere)
  becomes a string field holding each value's JSON text (``'1'``, ``'"u-1"'``), so nothing is lost and
  ``json.loads`` gives the value back. A type clash inside a list makes the whole list field JSON text.
- A column with any row that is not a JSON object (invalid JSON, an array, a bare string) is left as text,
  with a :class:`JSONDecodeWarning` naming the column; ``log_body``, which is plain text by design in most
  rows, is decoded only when every row is an object, and left as text silently otherwise.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

import polars as pl
from logfire_io._exceptions import ConfigurationError
from logfire_io.schema import JSON_COLUMNS

__all__ = ["JSONColumns", "JSONDecodeWarning", "decode_json_array", "decode_json_columns"]

JSONColumns = Literal["auto"] | Sequence[str] | Mapping[str, pl.DataType] | None
"""``"auto"`` (Logfire's JSON columns present in the result), None (keep text), names, or names to dtypes."""

_CONFLICT = re.compile(r"Column\((?P<path>[^)]*)\) changed from \w+ to \w+")
_AMBIGUOUS_KEY = r'"(?:[^"\\]|\\.)*/(?:[^"\\]|\\.)*"\s*:|"\[\]"\s*:'
"""Keys containing "/" or equal to "[]", which Arrow's clash messages (``Column(/a/[]/b)``) cannot name."""
_MAX_ROUNDS = 64
_BLOCK_SIZE = 4 << 20
_ALWAYS_TEXT = frozenset({"log_body"})


class JSONDecodeWarning(UserWarning):
    """Warned when a JSON column holds rows that are not JSON objects and is therefore left as text."""


class _NotObjects(Exception):
    """Some row is not a JSON object (invalid JSON, an array, a scalar)."""


def _conflict_key(message: str) -> list[str] | None:
    """The key path (up to the first list) whose values clash, from Arrow's JSON reader error."""
    match = _CONFLICT.search(message)
    if match is None:
        return None
    segments = match["path"].split("/")[1:]
    if "[]" in segments:
        segments = segments[: segments.index("[]")]
    return segments or None


def _as_json_text(line: str, paths: list[list[str]]) -> str:
    """``line`` with the value at each path replaced by its own JSON text (no path is inside another)."""
    document = orjson.loads(line)
    for path in paths:
        parent = document
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and parent.get(path[-1]) is not None:
            parent[path[-1]] = orjson.dumps(parent[path[-1]]).decode()
    return orjson.dumps(document).decode()


def _ndjson(lines: pl.Series) -> pa.Buffer:
    """The lines joined by newlines, as one Arrow buffer (no Python string in between)."""
    joined = pc.binary_join_element_wise(lines.to_arrow().cast(pa.string()), pa.scalar("\n"), pa.scalar(""))
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset : joined.offset + len(joined) + 1]
    return joined.buffers()[2][int(offsets[0]) : int(offsets[-1])] if len(joined) else pa.py_buffer(b"")


def _parse(data: pa.Buffer, schema: pa.Schema | None = None) -> pa.Table:
    """Parse NDJSON in blocks, in parallel; types unify across blocks, a clash raises naming its key path."""
    return pa_json.read_json(
        pa.BufferReader(data),
        read_options=pa_json.ReadOptions(block_size=_BLOCK_SIZE),
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )


def _text_timestamps(type_: pa.DataType) -> pa.DataType:
    """``type_`` with the timestamps Arrow's reader inferred from strings turned back into strings."""
    if pa.types.is_timestamp(type_):
        return pa.string()
    if pa.types.is_struct(type_):
        return pa.struct([f.with_type(_text_timestamps(f.type)) for f in type_])
    if pa.types.is_list(type_):
        return pa.list_(type_.value_field.with_type(_text_timestamps(type_.value_type)))
    return type_


def _read_objects(original: pl.Series) -> pa.ChunkedArray:
    """Parse non-null JSON object lines with Arrow's reader, turning clashing keys into JSON text."""
    lines, paths = original, list[list[str]]()
    for _ in range(_MAX_ROUNDS):
        data = _ndjson(lines)
        try:
            table = _parse(data)
        except pa.ArrowInvalid as exc:
            path = _conflict_key(str(exc))
            if path is None or path in paths:
                raise _NotObjects(str(exc)) from exc  # invalid JSON, or a key we cannot address (contains "/")
            # Keep only outermost paths, and rewrite from the original text, so an enclosing value that later
            # turns out to clash too is kept as its original JSON, not as the text-ified version. Only rows that
            # hold the new path's key change; rows rewritten in earlier rounds for other keys stay as they are.
            paths = [p for p in paths if p[: len(path)] != path] + [path]
            if len(path) == 1:  # the wrapping "v" itself: the rows mix objects and arrays
                touched = pl.Series([True] * len(original))
            else:
                touched = original.str.contains(re.escape(orjson.dumps(path[1]).decode()) + r"\s*:")
            fixed = pl.Series([_as_json_text(line, paths) for line in original.filter(touched)], dtype=pl.String)
            lines = lines.clone().scatter(touched.arg_true(), fixed) if touched.any() else lines
            continue
        schema = pa.schema([f.with_type(_text_timestamps(f.type)) for f in table.schema])
        if schema != table.schema:  # ISO dates were read as timestamps: read those fields as the text they are
            table = _parse(data, schema)
        struct_type = pa.struct(list(table.schema))
        chunks = [batch.to_struct_array() for batch in table.to_batches()]
        return pa.chunked_array(chunks, type=struct_type)
    msg = f"more than {_MAX_ROUNDS} keys with clashing types"
    raise _NotObjects(msg)


def decode_json_array(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Decode a string array of JSON objects (to a struct array) or JSON arrays (to a list array).

    Raises
    ------
    ValueError
        Some value is not valid JSON, or the values are not all objects or all arrays.
    """
    texts = pl.Series(values).cast(pl.String)
    valid = texts.is_not_null()
    lines = texts.filter(valid)
    if lines.is_empty():
        return pa.chunked_array([pa.nulls(len(texts), pa.struct([]))])
    multi_line = lines.str.contains("\n", literal=True) | lines.str.contains("\r", literal=True)
    if multi_line.any():  # pretty-printed JSON: make each document one line
        compact = [orjson.dumps(orjson.loads(text)).decode() for text in lines.filter(multi_line)]
        lines = lines.scatter(multi_line.arg_true(), pl.Series(compact, dtype=pl.String))
    # Wrap every document as {"v": ...}: objects and arrays then take the same path, and a column that mixes
    # them shows up as a clash on "v".
    wrapped = pl.select(pl.concat_str([pl.lit('{"v":'), lines, pl.lit("}")]).alias("v")).to_series()
    try:
        if lines.str.contains(_AMBIGUOUS_KEY).any():
            msg = "a key Arrow's error paths cannot name"
            raise _NotObjects(msg)
        decoded = _read_objects(wrapped)
        for chunk in decoded.chunks:
            chunk.validate(full=True)
    except (_NotObjects, pa.ArrowInvalid):
        # Arrow's reader refused (invalid JSON, a key it cannot address) or mis-read (nulls inside lists, seen in
        # pyarrow 26): decode exactly in Python instead. Slower, and only for such columns.
        decoded = pa.chunked_array([_python_objects(wrapped.to_list())])
    values_type = decoded.type.field("v").type
    if not (pa.types.is_struct(values_type) or pa.types.is_list(values_type)):
        msg = "the values are not all JSON objects or all JSON arrays"
        raise ValueError(msg)
    inner = pa.chunked_array([chunk.field("v") for chunk in decoded.chunks], type=values_type)
    if valid.all():
        return inner
    positions = valid.cast(pl.Int64).cum_sum() - 1
    indices = pa.array(positions.to_numpy(), mask=(~valid).to_numpy())
    return inner.take(indices)


_Spec = tuple[Any, ...]
"""A value type under the rules: ("null",), ("bool",), ("int",), ("float",), ("str",), ("text",) for JSON text,
("list", item), ("struct", {key: spec})."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "float"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "struct"


def _contains_text(spec: _Spec) -> bool:
    if spec[0] == "text":
        return True
    if spec[0] == "list":
        return _contains_text(spec[1])
    if spec[0] == "struct":
        return any(_contains_text(s) for s in spec[1].values())
    return False


def _infer(values: list[Any]) -> _Spec:
    present = [v for v in values if v is not None]
    kinds = {_kind(v) for v in present}
    if kinds == {"int", "float"}:
        kinds = {"float"}
    if not kinds:
        return ("null",)
    if len(kinds) > 1:
        return ("text",)
    kind = kinds.pop()
    if kind == "struct":
        keys = dict.fromkeys(k for v in present for k in v)
        return ("struct", {k: _infer([v.get(k) for v in present]) for k in keys})
    if kind == "list":
        item = _infer([i for v in present for i in v])
        return ("text",) if _contains_text(item) else ("list", item)
    return (kind,)


def _arrow_type(spec: _Spec) -> pa.DataType:
    simple = {
        "null": pa.null(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "text": pa.string(),
    }
    if spec[0] in simple:
        return simple[spec[0]]
    if spec[0] == "list":
        return pa.list_(_arrow_type(spec[1]))
    return pa.struct([pa.field(k, _arrow_type(s)) for k, s in spec[1].items()])


def _convert(value: Any, spec: _Spec) -> Any:
    if value is None:
        return None
    if spec[0] == "text":
        return orjson.dumps(value).decode()
    if spec[0] == "float":
        return float(value)
    if spec[0] == "list":
        return [_convert(v, spec[1]) for v in value]
    if spec[0] == "struct":
        return {k: _convert(value.get(k), s) for k, s in spec[1].items()}
    return value


def _python_objects(lines: list[str]) -> pa.StructArray:
    """The exact, slow path: parse each document in Python and apply the rules."""
    documents = [orjson.loads(line) for line in lines]
    if not all(isinstance(d, dict) for d in documents):
        msg = "not every value is a JSON object"
        raise ValueError(msg)
    spec = _infer(documents)
    if spec[0] != "struct":
        spec = ("struct", {})
    return pa.array([_convert(d, spec) for d in documents], _arrow_type(spec))


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_)


def _requested(table: pa.Table, json_columns: JSONColumns) -> dict[str, pl.DataType | None]:
    """Which columns to decode, and with what dtype (None: infer)."""
    if json_columns is None:
        return {}
    if json_columns == "auto":
        return {field.name: None for field in table.schema if field.name in JSON_COLUMNS and _is_text(field.type)}
    if isinstance(json_columns, str):
        msg = f"`json_columns` must be 'auto', None, a list of names or a dict of dtypes, got {json_columns!r}"
        raise ConfigurationError(msg)
    wanted = dict(json_columns) if isinstance(json_columns, Mapping) else dict.fromkeys(json_columns)
    unknown = [name for name in wanted if name not in table.column_names]
    if unknown:
        msg = f"`json_columns` names columns the result does not have: {unknown}; it has {table.column_names}"
        raise ConfigurationError(msg)
    not_text = [name for name in wanted if not _is_text(table.schema.field(name).type)]
    if not_text:
        msg = f"`json_columns` names columns that are not text: {not_text}"
        raise ConfigurationError(msg)
    return wanted


def decode_json_columns(table: pa.Table, json_columns: JSONColumns = "auto") -> pa.Table:
    """``table`` with its JSON text columns decoded (see the module docstring for the rules)."""
    for name, dtype in _requested(table, json_columns).items():
        column = table.column(name)
        index = table.schema.get_field_index(name)
        if dtype is not None:
            decoded = pl.Series(column).str.json_decode(dtype).to_arrow()
        else:
            try:
                decoded = decode_json_array(column)
            except ValueError as exc:
                if name not in _ALWAYS_TEXT:
                    warnings.warn(
                        f"column {name!r} was left as text: {exc}. Pass `json_columns=None` to keep JSON columns "
                        "as text, or a dict of dtypes to decode leniently.",
                        JSONDecodeWarning,
                        stacklevel=3,
                    )
                continue
        table = table.set_column(index, pa.field(name, decoded.type, nullable=True), decoded)
    return table
