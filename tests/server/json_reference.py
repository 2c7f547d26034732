"""A reference for Logfire's JSON functions: ``json.loads`` plus the rules in :mod:`logfire_io.server.udfs`.

It shares no code with the server, so the corpus and property tests compare the server against it. Unlike
``datafusion-functions-json`` (first member wins), ``json.loads`` keeps the last of duplicate members: tests
that have duplicates say which member they expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "FUNCTIONS",
    "KINDS",
    "MISSING",
    "as_bool",
    "as_float",
    "as_int",
    "as_json",
    "as_keys",
    "as_length",
    "as_str",
    "as_text",
    "expected",
    "find",
    "matches",
]

MISSING = object()


def find(text: str | None, steps: tuple[Any, ...]) -> Any:
    """The value at ``steps`` in the JSON ``text``: keys on objects, integers (or integer text) on arrays."""
    if text is None:
        return MISSING
    try:
        value = json.loads(text)
    except ValueError:
        return MISSING
    for step in steps:
        if step is MISSING:
            return MISSING
        if isinstance(value, dict) and isinstance(step, str):
            if step not in value:
                return MISSING
            value = value[step]
        elif isinstance(value, list) and (isinstance(step, int) or re.fullmatch(r"[+-]?\d+", step)):
            index = int(step)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def as_text(value: Any) -> Any:
    """``->>``: a string as itself, JSON null or nothing as None, anything else as its JSON value (compared parsed)."""
    return None if value is MISSING or value is None else value


def _typed(check: Callable[[Any], bool], convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], Any]:
    return lambda v: convert(v) if v is not MISSING and check(v) else None


as_str = _typed(lambda v: isinstance(v, str))
as_int = _typed(lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63)
as_float = _typed(lambda v: isinstance(v, int | float) and not isinstance(v, bool), float)
as_bool = _typed(lambda v: isinstance(v, bool))
as_length = _typed(lambda v: isinstance(v, dict | list), len)
as_keys = _typed(lambda v: isinstance(v, dict), list)


def as_json(value: Any) -> Any:
    return MISSING if value is MISSING else value


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "json_get": as_text,
    "json_as_text": as_text,
    "json_get_str": as_str,
    "json_get_int": as_int,
    "json_get_float": as_float,
    "json_get_bool": as_bool,
    "json_get_json": as_json,
    "json_length": as_length,
    "json_keys": as_keys,
}
FUNCTIONS = [*_CONVERSIONS, "json_contains"]
KINDS = {"json_get": "text", "json_as_text": "text", "json_get_json": "json"}


def expected(function: str, text: str | None, steps: tuple[Any, ...]) -> Any:
    """What ``function(text, steps...)`` must answer."""
    found = find(text, steps)
    if function == "json_contains":
        return found is not MISSING
    return _CONVERSIONS[function](found)


def matches(kind: str, result: Any, wanted: Any) -> bool:
    """Whether a result equals the reference: JSON text compared parsed, everything else exactly (types too)."""
    if kind == "json":
        return (result is None) if wanted is MISSING else canonical(json.loads(result)) == canonical(wanted)
    if kind == "text" and wanted is not None and not isinstance(wanted, str):
        return result is not None and canonical(json.loads(result)) == canonical(wanted)
    return result == wanted and type(result) is type(wanted)
