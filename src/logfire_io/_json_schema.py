"""A struct dtype for ``attributes`` from Logfire's per-row JSON schemas, without reading the attributes.

The logfire SDK sends, with each span, ``logfire.json_schema``: a JSON schema whose ``properties`` name the
attributes it set from the user's arguments (``{"type":"object","properties":{"user_id":{},"cart":{"type":
"object",...}}}``); Logfire stores it per row as ``attributes_json_schema``. The distinct values over a window
are few (one per call site and argument types), so one small aggregate gives every such key.

What it cannot give, said plainly: keys set by OpenTelemetry instrumentation (``http.route``...) are not in it,
and a scalar's property is usually ``{}``, with no type. So a key's dtype is the one its ``"type"`` names
(``integer`` Int64, ``number`` Float64, ``boolean`` Boolean, ``string`` String) when every schema naming the
key agrees, and String (the value's text, as ``->>`` gives it) otherwise. Declare the dtype yourself
(``json_columns={"attributes": pl.Struct({...})}``) for instrumentation keys or exact types.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from logfire_io._exceptions import ConfigurationError
from logfire_io._protocol import MAX_LIMIT

__all__ = ["SCHEMAS_SQL", "struct_from_schemas"]

SCHEMAS_SQL = "SELECT DISTINCT attributes_json_schema AS s FROM {table} WHERE attributes_json_schema IS NOT NULL"
"""The aggregate asked once per scan with ``json_columns="auto"``: the window's distinct schemas."""

_TYPES: dict[str, pl.DataType] = {
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
    "string": pl.String(),
}


def _properties(text: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except ValueError:
        return {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return properties if isinstance(properties, dict) else {}


def _dtype(prop: Any) -> pl.DataType:
    kind = prop.get("type") if isinstance(prop, dict) else None
    return _TYPES.get(kind, pl.String()) if isinstance(kind, str) else pl.String()


def struct_from_schemas(schemas: list[str]) -> pl.Struct:
    """The struct of every key the schemas name, typed as the module docstring says, keys in first-seen order."""
    if len(schemas) >= MAX_LIMIT:
        msg = (
            f"the window holds {MAX_LIMIT:,} or more distinct `attributes_json_schema` values, too many to build "
            "one struct from.\n\nHint: narrow the window (min_timestamp/max_timestamp), or declare the fields: "
            'json_columns={"attributes": pl.Struct({...})}.'
        )
        raise ConfigurationError(msg)
    fields: dict[str, pl.DataType] = {}
    for text in schemas:
        for key, prop in _properties(text).items():
            dtype = _dtype(prop)
            fields[key] = dtype if fields.get(key, dtype) == dtype else pl.String()
    return pl.Struct(fields)
