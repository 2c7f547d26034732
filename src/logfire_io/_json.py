"""Decode JSON-string columns (``attributes``, ``otel_events``...) into Arrow structs and lists, exactly.

Logfire returns JSON columns as text in Arrow. Decoding must not guess from the first rows: the schema is the
union over every row, found by Arrow's C++ JSON reader over the whole column at once. Each decoded value equals
:func:`json.loads` of the original text (a repeated key keeps its last value; ``NaN`` and ``Infinity`` are
floats), or, for a key whose types clash, is that value's JSON text. The rules:

- An object becomes a struct with one field per key seen in any row; a key missing from a row is null there
  (so a missing key and an explicit JSON ``null`` read the same). Dotted keys (``http.method``) stay literal.
- A SQL NULL stays a null struct; ``{}`` is a struct whose fields are all null.
- Integers stay ``int64`` unless the same key also holds fractions in some row, then all are ``float64``, as
  long as float64 holds each integer exactly (up to 2**53 in magnitude). A key with a larger integer beside
  fractions, or with an integer beyond the int64 range, is a clash: JSON text, every digit kept.
- A key whose values have different JSON types across rows (``1`` here, ``"u-1"`` there, an object elsewhere)
  becomes a string field holding each value's JSON text (``'1'``, ``'"u-1"'``), so nothing is lost and
  ``json.loads`` gives the value back. A type clash inside a list makes the whole list field JSON text.
- A column with any row that is not a JSON object (invalid JSON, an array, a bare string) is left as text,
  with a :class:`JSONDecodeWarning` naming the column; ``log_body``, which is plain text by design in most
  rows, is decoded only when every row is an object, and left as text silently otherwise.
"""

from __future__ import annotations

import json
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
_NOT_PYTHON_NUMBERS = r"[:,\[]\s*(?:-NaN|-?Inf[^i])"
"""``-NaN``, ``Inf`` and ``-Inf``: Arrow's reader takes them, Python's refuses them (they are not JSON)."""
_DEEP_CHAIN = r'(?:[\[{]\s*(?:"(?:[^"\\]|\\.)*"\s*:\s*)?){65}'
"""65 objects or lists each opening the next: deeper than allowed, and Arrow's reader takes quadratic time on
such a chain of lists (10 s for 3,000 levels in 6 kB)."""
_NOT_FOR_ARROW = f"{_AMBIGUOUS_KEY}|{_NOT_PYTHON_NUMBERS}|{_DEEP_CHAIN}"
_ESCAPED_KEY = r'"(?:[^"\\]|\\.)*\\.(?:[^"\\]|\\.)*"\s*:'
"""A key written with an escape (``"\\u00e9"`` for ``"é"``): the row may hold a key under another spelling than
the one searched for, so it is looked at by a JSON reader."""
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
"""Keys that are literal in a regular expression once dots are escaped, and need no escaping in JSON."""
_SCALAR = r'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+\-]*|true|false|null'
"""One JSON scalar token (a string with escapes, a number, a literal)."""
_RE2_SPECIAL = frozenset(".^$*+?()[]{}|\\")
_MAX_ROUNDS = 64
_MAX_DEPTH = 64
"""Objects and lists nested deeper than this leave the column as text (Python's own reader stops near 1000)."""
_FLOAT_EXACT = 2**53
"""Integers up to this magnitude are exact in float64; beside fractions, larger ones are kept as JSON text."""
_BLOCK_SIZE = 4 << 20
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_NOT_READ = object()
"""orjson did not read the text (None cannot say so: it is JSON's null)."""
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


def _json_text(value: Any) -> str:
    """Compact JSON text of a value read by :func:`json.loads`.

    Integers of any size keep every digit (orjson would turn those beyond 64 bits into floats); NaN and the
    infinities are written as Python's reader reads them back.
    """
    return _ENCODER.encode(value)


def _loads(text: str, *, unique_keys: bool = False, orjson_first: bool = False) -> Any:
    """:func:`json.loads`, refusing values nested deeper than ``_MAX_DEPTH`` with a ValueError that says so.

    ``orjson_first``: try orjson (three times faster) first. Only for a text without 19 digits in a row: orjson
    reads integers beyond 64 bits as floats. It refuses NaN and the infinities, which then go to Python's reader.
    """
    msg = f"a value is nested deeper than {_MAX_DEPTH} objects and lists"
    try:
        value = orjson.loads(text) if orjson_first else _NOT_READ
    except orjson.JSONDecodeError:
        value = _NOT_READ
    try:
        if value is _NOT_READ:
            value = json.loads(text, object_pairs_hook=_unique_keys if unique_keys else None)
    except RecursionError:
        raise ValueError(msg) from None
    # Only a text with that many brackets can be that deep: most values skip the walk.
    if text.count("{") + text.count("[") > _MAX_DEPTH and _depth(value) > _MAX_DEPTH:
        raise ValueError(msg)
    return value


def _depth(value: Any) -> int:
    """How many objects and lists deep ``value`` is (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _type_depth(type_: pa.DataType) -> int:
    """How many structs and lists deep ``type_`` is, without recursion."""
    deepest, stack = 0, [(type_, 0)]
    while stack:
        item, depth = stack.pop()
        if pa.types.is_struct(item) or pa.types.is_list(item):
            deepest = max(deepest, depth + 1)
            children = [f.type for f in item] if pa.types.is_struct(item) else [item.value_type]
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as :func:`json.loads` builds it, refusing a repeated key (see :func:`_as_json_text`)."""
    document = dict(pairs)
    if len(document) < len(pairs):
        msg = "an object repeats a key"
        raise _NotObjects(msg)
    return document


def _as_json_text(line: str, paths: list[list[str]]) -> str:
    """``line`` with the value at each path replaced by its own JSON text (no path is inside another).

    A repeated key refuses (:class:`_NotObjects`): Arrow's reader saw both values, so the clash it reported may
    come from the one a JSON reader discards; the whole column is then read the exact, slow way.
    """
    document = _loads(line, unique_keys=True)
    for path in paths:
        parent = document
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and parent.get(path[-1]) is not None:
            parent[path[-1]] = _json_text(parent[path[-1]])
    return _json_text(document)


def _holds_large_floats(array: pa.Array) -> bool:
    """Whether a float64 value at any depth is 2**53 or more in magnitude.

    Any integer float64 cannot hold is, once Arrow's reader has made it a float. NaN is not; infinities and
    large fractions are, harmlessly (their rows are then looked at and found fine).
    """
    if pa.types.is_floating(array.type):
        return bool(pc.any(pc.greater_equal(pc.abs(array), float(_FLOAT_EXACT))).as_py())
    if pa.types.is_struct(array.type):
        return any(_holds_large_floats(child) for child in array.flatten())
    return pa.types.is_list(array.type) and _holds_large_floats(array.flatten())


def _inexact_in(value: Any, type_: pa.DataType, path: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Paths (up to the first list) where ``value`` puts an integer float64 cannot hold into a float field."""
    if pa.types.is_floating(type_):
        inexact = isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_EXACT
        return {path} if inexact else set()
    if pa.types.is_struct(type_) and isinstance(value, dict):
        found = set()
        for field in type_:
            if value.get(field.name) is not None:
                found |= _inexact_in(value[field.name], field.type, (*path, field.name))
        return found
    if pa.types.is_list(type_) and isinstance(value, list):
        return {path} if any(_inexact_in(item, type_.value_type, path) for item in value) else set()
    return set()


def _inexact_floats(decoded: pa.ChunkedArray, lines: pa.Array) -> list[list[str]]:
    """Keys Arrow's reader made float64 although some row holds an integer there that float64 cannot hold.

    Arrow reads an integer beyond int64, or any integer beside fractions, as float64, losing digits past 2**53.
    Only when some float is that large are rows looked at; such an integer has at least 16 digits, so only rows
    with a run of 16 digits are parsed.
    """
    if not any(_holds_large_floats(chunk.field("v")) for chunk in decoded.chunks):
        return []
    type_ = decoded.type.field("v").type
    long = pl.Series(lines).str.contains("[0-9]{16}").fill_null(False).to_arrow()
    found: set[tuple[str, ...]] = set()
    for line in lines.filter(long).to_pylist():
        found |= _inexact_in(_loads(line), type_, ())
    return [list(path) for path in found]


def _literal(text: str) -> str:
    """``text`` as a literal in an RE2 pattern (Python's ``re.escape`` escapes characters RE2 rejects)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def _ndjson(lines: pa.Array) -> pa.Buffer:
    """Each line wrapped as ``{"v":line}`` and newline-terminated, as one Arrow buffer, in one pass."""
    joined = pc.binary_join_element_wise(pa.scalar('{"v":'), lines, pa.scalar("}\n"), pa.scalar(""))
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset : joined.offset + len(joined) + 1]
    return joined.buffers()[2][int(offsets[0]) : int(offsets[-1])]


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


def _timestamp_paths(type_: pa.DataType, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]] | None:
    """Paths of struct fields Arrow read as timestamps; None if one sits inside a list (no path reaches it)."""
    if pa.types.is_timestamp(type_):
        return [prefix]
    if pa.types.is_struct(type_):
        found: list[tuple[str, ...]] = []
        for field in type_:
            inner = _timestamp_paths(field.type, (*prefix, field.name))
            if inner is None:
                return None
            found += inner
        return found
    if pa.types.is_list(type_):
        return [] if _timestamp_paths(type_.value_type) == [] else None  # None (a list inside) too
    return []


def _with_field(array: pa.StructArray, path: tuple[str, ...], values: pa.Array) -> pa.StructArray:
    """``array`` with the field at ``path`` replaced by ``values`` (same length), validity kept."""
    index = array.type.get_field_index(path[0])
    child = array.field(index)
    new_child = values if len(path) == 1 else _with_field(child, path[1:], values)
    children = [new_child if i == index else array.field(i) for i in range(array.type.num_fields)]
    fields = [array.type.field(i).with_type(c.type) for i, c in enumerate(children)]
    return pa.StructArray.from_arrays(children, fields=fields, mask=array.is_null() if array.null_count else None)


def _restore_timestamp_text(
    decoded: pa.ChunkedArray, lines: pa.Array, data: pa.Buffer, escaped: pl.Series
) -> pa.ChunkedArray:
    """Arrow's reader turns ISO-date-like strings into timestamps; give those fields back their exact text.

    Each such field is re-read from the documents with a JSONPath match (the exact string). A timestamp inside a
    list, behind a key JSONPath cannot spell, or in a row JSONPath cannot read (polars' reader refuses ``NaN``)
    makes the whole column be parsed again with string types instead. ``escaped``: rows that may write a key
    with escapes (see :func:`_escaped_keys`), searched whatever key they are searched for.
    """
    paths = _timestamp_paths(decoded.type)
    if paths == []:
        return decoded
    if paths is None or any("'" in key or "\\" in key for path in paths for key in path):
        return _parse_with_text_timestamps(decoded.type, data)
    texts = pl.Series(lines)
    restored = decoded
    for path in paths:
        jsonpath = "$" + "".join(f"['{key}']" for key in path[1:])  # path[0] is the wrapping "v"
        holders = (texts.str.contains(orjson.dumps(path[-1]).decode(), literal=True) | escaped).to_arrow()
        found = pl.Series(lines.filter(holders)).str.json_path_match(jsonpath).to_arrow().cast(pa.string())
        found = pc.replace_with_mask(pa.nulls(len(lines), pa.string()), holders, found)
        if pc.any(pc.and_(pc.is_valid(_field_at(decoded, path)), pc.is_null(found))).as_py():
            return _parse_with_text_timestamps(decoded.type, data)  # JSONPath missed a value Arrow read
        restored = _replace_path(restored, path, found)
    return restored


def _parse_with_text_timestamps(type_: pa.StructType, data: pa.Buffer) -> pa.ChunkedArray:
    """``data`` parsed again with ``type_``, its timestamps read as the strings they are in the text."""
    schema = pa.schema([f.with_type(_text_timestamps(f.type)) for f in type_])
    table = _parse(data, schema)
    return pa.chunked_array([b.to_struct_array() for b in table.to_batches()], type=pa.struct(list(schema)))


def _field_at(decoded: pa.ChunkedArray, path: tuple[str, ...]) -> pa.Array:
    """The values at ``path`` (nested struct fields), one per row; null where an enclosing struct is null."""
    chunks = []
    for chunk in decoded.chunks:
        for key in path:
            chunk = chunk.field(key) if chunk.null_count == 0 else pc.struct_field(chunk, [key])
        chunks.append(chunk)
    return pa.chunked_array(chunks).combine_chunks()


def _replace_path(decoded: pa.ChunkedArray, path: tuple[str, ...], values: pa.Array) -> pa.ChunkedArray:
    """``decoded`` with the field at ``path`` replaced by ``values`` (one value per row)."""
    chunks, offset = [], 0
    for chunk in decoded.chunks:
        chunks.append(_with_field(chunk, path, values.slice(offset, len(chunk))))
        offset += len(chunk)
    return pa.chunked_array(chunks)


def _scalar_clash(candidates: pa.Array, path: list[str]) -> tuple[pa.BooleanArray, pa.Array, pa.Array]:
    """For a clashing key ``path``, the candidate rows it can be handled in without a Python parse.

    Those are rows where the last key's ``"key":`` occurs exactly once (so it is the one the JSONPath of ``path``
    finds) and holds a non-null scalar. Returns their mask over ``candidates``, the raw JSON text of each one's
    value (the text in the document), and those rows with the value replaced by ``null``, so that Arrow's reader
    sees no clash.
    """
    pattern = _literal('"' + path[-1] + '"') + r"\s*:"
    documents = pl.Series(candidates)
    token = documents.str.extract(f"{pattern}\\s*({_SCALAR})", 1)
    handled = (
        (documents.str.count_matches(pattern) == 1)
        & (token.is_not_null() & (token != "null"))
        & documents.str.json_path_match("$" + "".join(f"['{key}']" for key in path)).is_not_null()
    ).fill_null(False)
    nulled = documents.filter(handled).str.replace(f"({pattern}\\s*)(?:{_SCALAR})", "${1}null")
    return handled.to_arrow(), token.filter(handled).to_arrow().cast(pa.string()), nulled.to_arrow().cast(pa.string())


def _read_objects(original: pa.Array) -> pa.ChunkedArray:
    """Parse JSON documents (wrapped as ``{"v": ...}``) with Arrow's reader, turning clashing keys into JSON text.

    Returns the struct array of the wrappers; its field ``v`` holds the documents. Each round either parses
    cleanly or finds keys to keep as JSON text (a type clash Arrow names, or integers float64 cannot hold) and
    rewrites the rows holding them. The clash fix-ups made without a parse are applied last, after the
    timestamp-text restore, which may parse the column again.
    """
    lines, paths = original, list[list[str]]()
    documents = pl.Series(original)  # polars' regex engine is several times faster here than Arrow's
    escaped = _escaped_keys(documents)
    vectorised: dict[tuple[str, ...], tuple[pa.BooleanArray, pa.Array]] = {}
    for _ in range(_MAX_ROUNDS):
        data = _ndjson(lines)
        try:
            table = _parse(data)
        except pa.ArrowInvalid as exc:
            found = _conflict_key(str(exc))
            if found is None or len(found) < 2 or found[1:] in paths:
                # invalid JSON, documents of mixed kinds (a clash on "v" itself), or a key we cannot address
                raise _NotObjects(str(exc)) from exc
            new_paths = [found[1:]]
        else:
            if table.num_rows != len(lines):
                msg = "a value holds more than one JSON document"
                raise _NotObjects(msg)
            if _type_depth(table.schema.field("v").type) > _MAX_DEPTH:
                msg = "deep nesting"
                raise _NotObjects(msg)
            chunks = [batch.to_struct_array() for batch in table.to_batches()]
            decoded = pa.chunked_array(chunks, type=pa.struct(list(table.schema)))
            new_paths = _inexact_floats(decoded, lines)
            if any(path in paths or not path for path in new_paths):
                # a key kept as text still read as numbers (spelled with escapes in some row), or the documents
                # themselves are lists holding such numbers: both for the exact path
                msg = "numbers float64 cannot hold where no key can be kept as text"
                raise _NotObjects(msg)
            if not new_paths:
                decoded = _restore_timestamp_text(decoded, lines, data, escaped)
                return _with_vectorised(decoded, vectorised, paths)
        for path in new_paths:
            lines = _keep_as_text(path, lines, original, documents, escaped, paths, vectorised)
    msg = f"more than {_MAX_ROUNDS} keys with clashing types"
    raise _NotObjects(msg)


def _escaped_keys(documents: pl.Series) -> pl.Series:
    """Which documents may write a key with an escape; the costly search only in those with a backslash at all.

    Rows rewritten by a JSON writer write keys with escapes only where the original had to, so this holds for
    the rewritten rows too.
    """
    backslash = documents.str.contains("\\", literal=True)
    if not backslash.any():
        return backslash
    escaped = documents.filter(backslash).str.contains(_ESCAPED_KEY).to_arrow()
    return pl.Series(pc.replace_with_mask(backslash.to_arrow(), backslash.to_arrow(), escaped))


def _keep_as_text(
    path: list[str],
    lines: pa.Array,
    original: pa.Array,
    documents: pl.Series,
    escaped: pl.Series,
    paths: list[list[str]],
    vectorised: dict[tuple[str, ...], tuple[pa.BooleanArray, pa.Array]],
) -> pa.Array:
    """``lines`` with the values at ``path`` made JSON text; ``paths`` and ``vectorised`` are updated in place.

    Keep only outermost paths, and rewrite from the original text, so an enclosing value that later turns out to
    clash too is kept as its original JSON, not as the text-ified version. Only rows that hold the new path's key
    change; rows rewritten in earlier rounds for other keys stay as they are.
    """
    paths[:] = [p for p in paths if p[: len(path)] != path] + [path]
    spelled = documents.str.contains(_literal(orjson.dumps(path[0]).decode()) + r"\s*:")
    touched = (spelled | escaped).to_arrow()
    if all(_SAFE_KEY.match(key) for key in path):
        # Most clashes are scalars (an id that is sometimes a string): take their text vectorised, and leave only
        # the other rows to the per-row rewrite below. Not in a row spelling a key with escapes: the one plain
        # spelling found there may belong to another object.
        plain = (spelled & ~escaped).to_arrow()
        local, texts, nulled = _scalar_clash(lines.filter(plain), path)
        handled = pc.replace_with_mask(plain, plain, local)
        texts = pc.replace_with_mask(pa.nulls(len(lines), pa.string()), handled, texts)
        vectorised[tuple(path)] = (handled, texts)
        lines = pc.replace_with_mask(lines, handled, nulled)
        touched = pc.and_(touched, pc.invert(handled))
    fixed = [_as_json_text(line, paths) for line in original.filter(touched).to_pylist()]
    return pc.replace_with_mask(lines, touched, pa.array(fixed, pa.string()))


def _with_vectorised(
    decoded: pa.ChunkedArray,
    vectorised: dict[tuple[str, ...], tuple[pa.BooleanArray, pa.Array]],
    paths: list[list[str]],
) -> pa.ChunkedArray:
    """``decoded`` with the JSON text of the clashing values taken without a parse put back in place."""
    for key_path, (handled, texts) in vectorised.items():
        if any(key_path[: len(p)] == tuple(p) and len(p) < len(key_path) for p in paths):
            continue  # an enclosing value clashed later and is JSON text as a whole
        parsed = _field_at(decoded, ("v", *key_path)).cast(pa.string())
        decoded = _replace_path(decoded, ("v", *key_path), pc.if_else(handled, texts, parsed))
    return decoded


def decode_json_array(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Decode a string array of JSON objects (to a struct array) or JSON arrays (to a list array).

    Raises
    ------
    ValueError
        Some value is not valid JSON (as Python's :func:`json.loads` reads it), is nested deeper than 64 objects
        and lists, holds a string UTF-8 cannot hold (an unpaired surrogate escape), or the values are not all
        objects or all arrays.
    """
    texts = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    texts = texts.cast(pa.string())
    valid = pc.is_valid(texts)
    lines = texts.filter(valid)
    if len(lines) == 0:
        return pa.chunked_array([pa.nulls(len(texts), pa.struct([]))])
    # One pass for the rare cases (a pretty-printed document, a key Arrow cannot name, text Arrow reads and
    # Python refuses); each is then looked at on its own only if that pass found something.
    unusual = pc.any(pc.match_substring_regex(lines, f"[\r\n]|{_NOT_FOR_ARROW}")).as_py()
    multi_line = pc.match_substring_regex(lines, "[\r\n]") if unusual else None
    if multi_line is not None and pc.any(multi_line).as_py():  # pretty-printed JSON: one document per line
        compact = [_json_text(_loads(text)) for text in lines.filter(multi_line).to_pylist()]
        lines = pc.replace_with_mask(lines, multi_line, pa.array(compact, pa.string()))
    try:
        if unusual and pc.any(pc.match_substring_regex(lines, _NOT_FOR_ARROW)).as_py():
            msg = "a key Arrow's error paths cannot name, or text Arrow's reader misreads or is slow on"
            raise _NotObjects(msg)
        decoded = _read_objects(lines)
        for chunk in decoded.chunks:
            chunk.validate()  # catches the list-offset corruption; full validation costs a pass over the data
    except (_NotObjects, pa.ArrowInvalid):
        # Arrow's reader refused (invalid JSON, a key it cannot address) or mis-read (nulls inside lists, seen in
        # pyarrow 26): decode exactly in Python instead. Slower, and only for such columns.
        decoded = pa.chunked_array([_python_objects(lines)])
    values_type = decoded.type.field("v").type
    if not (pa.types.is_struct(values_type) or pa.types.is_list(values_type)):
        msg = "the values are not all JSON objects or all JSON arrays"
        raise ValueError(msg)
    inner = pa.chunked_array([chunk.field("v") for chunk in decoded.chunks], type=values_type)
    if pc.all(valid).as_py():
        return inner
    positions = np.cumsum(valid.to_numpy(zero_copy_only=False)) - 1
    indices = pa.array(positions, mask=pc.invert(valid).to_numpy(zero_copy_only=False))
    return inner.take(indices)


_Spec = tuple[Any, ...]
"""A value type under the rules: ("null",), ("bool",), ("int",), ("float",), ("str",), ("text",) for JSON text,
("list", item), ("struct", {key: spec})."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
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
    if not kinds:
        return ("null",)
    if kinds <= {"int", "float"}:
        return _number_spec(present, kinds)
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


def _number_spec(numbers: list[int | float], kinds: set[str]) -> _Spec:
    """int64 if every number is an int64 integer; float64 if float64 holds every one exactly; else JSON text."""
    integers = [v for v in numbers if isinstance(v, int)]
    if kinds == {"int"} and all(-(2**63) <= v < 2**63 for v in integers):
        return ("int",)
    if all(abs(v) <= _FLOAT_EXACT for v in integers):
        return ("float",)
    return ("text",)


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
        return _json_text(value)
    if spec[0] == "float":
        return float(value)
    if spec[0] == "list":
        return [_convert(v, spec[1]) for v in value]
    if spec[0] == "struct":
        return {k: _convert(value.get(k), s) for k, s in spec[1].items()}
    return value


def _python_objects(lines: pa.Array) -> pa.StructArray:
    """The exact, slow path: parse each document in Python and apply the rules.

    Returns the documents wrapped as ``{"v": document}``, as the fast path does.
    """
    long_integers = pl.Series(lines).str.contains("[0-9]{19}").fill_null(False).to_list()
    documents = [
        {"v": _loads(line, orjson_first=not long)} for line, long in zip(lines.to_pylist(), long_integers, strict=True)
    ]
    spec = _infer(documents)
    try:
        return pa.array([_convert(d, spec) for d in documents], _arrow_type(spec))
    except UnicodeEncodeError as exc:
        msg = f"a string holds an unpaired surrogate escape ({exc.object[exc.start : exc.end]!r}), not UTF-8 text"
        raise ValueError(msg) from None


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
    wanted: dict[str, pl.DataType | None] = (
        dict(json_columns) if isinstance(json_columns, Mapping) else dict.fromkeys(json_columns)
    )
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
            try:
                decoded = pl.Series(column).str.json_decode(dtype).to_arrow()
            except pl.exceptions.PolarsError as exc:
                reason = str(exc).splitlines()[0][:200]
                msg = (
                    f"`json_columns` gives {name!r} the dtype {dtype}, which its JSON does not fit ({reason}).\n\n"
                    "Hint: give a dtype the values fit (a pl.Struct for objects), or `json_columns='auto'` to infer it."
                )
                raise ConfigurationError(msg) from exc
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
