"""Translate a polars predicate into SQL for pushdown; what cannot be translated is left to polars.

polars serializes an expression as a JSON tree (``Expr.meta.serialize(format="json")``); each node kind has a
translator. A node that cannot be translated makes its subtree untranslatable, which is safe because the scan
still filters every batch with the full predicate (polars does not re-apply it). In a top-level AND, the
translatable conjuncts are still pushed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from logfire_io._fields import field_sql, null_sql
from logfire_io._sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    import polars as pl

    Structs = Mapping[str, pl.Struct]

__all__ = ["Pushdown", "translate"]

_COMPARISONS = {"Eq": "=", "NotEq": "<>", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_INTEGERS = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Int", "Int128"}
_FLOATS = {"Float32", "Float64", "Float"}


_MAX_PUSHED_CHARS = 4_096
"""At most this much SQL of filters is pushed, conjunct by conjunct; the rest is filtered locally. A long
``is_in`` list would otherwise make a request the service refuses (a body over its limit, or a URL over its
limit on the v1 API, which sends the SQL as a query parameter)."""


class _Untranslatable(Exception):
    pass


@dataclass(frozen=True)
class Pushdown:
    """The SQL for the translatable part of a predicate, and time bounds it implies on one column."""

    where: str | None
    min_timestamp: datetime | None = None
    max_timestamp: datetime | None = None
    complete: bool = True
    """Whether every conjunct was translated (then the SQL alone filters exactly, and a limit may follow it)."""


def _datetime(value: int, unit: str, zone: Any) -> datetime:
    if unit == "Nanoseconds" and value % 1000:
        raise _Untranslatable  # finer than Logfire's microseconds: let polars compare it
    micros = {"Nanoseconds": value // 1000, "Microseconds": value, "Milliseconds": value * 1000}[unit]
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return moment if zone is not None else moment.replace(tzinfo=None)


def _literal_value(node: dict[str, Any]) -> Any:
    """The Python value of a literal node (``datetime`` for timestamps)."""
    literal = node["Literal"]
    kind, payload = next(iter(literal.items()))
    value: Any
    value_kind, value = next(iter(payload.items())) if isinstance(payload, dict) else (payload, None)
    if kind not in {"Dyn", "Scalar"}:
        raise _Untranslatable
    if value_kind in _INTEGERS | _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Untranslatable
        return value
    if value_kind in {"String", "Str"}:
        return str(value)
    if value_kind == "Boolean":
        return bool(value)
    if value_kind == "Datetime":
        number, unit, zone = value
        return _datetime(number, unit, zone)
    if value_kind == "Date":
        return datetime(1970, 1, 1) + timedelta(days=value)
    if value_kind == "List":
        values = pa.ipc.open_stream(bytes(value)).read_all().column(0).to_pylist()
        return values[0] if len(values) == 1 and isinstance(values[0], list) else values
    raise _Untranslatable


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):  # SQL has no literal for NaN or infinity
            raise _Untranslatable
        return repr(value)
    if isinstance(value, str):
        return quote_literal(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _Untranslatable  # naive vs aware comparison semantics differ; let polars do it
        return f"CAST({quote_literal(value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))} AS TIMESTAMPTZ)"
    raise _Untranslatable


def _sql(node: dict[str, Any], structs: Structs) -> str:
    kind, body = next(iter(node.items()))
    if kind == "Column":
        if body in structs:  # a JSON column fetched field by field: only whether it is null can be asked of it
            raise _Untranslatable
        return quote_identifier(body)
    if kind == "Literal":
        return _sql_literal(_literal_value(node))
    if kind == "Cast":  # a cast literal keeps its value; a cast column may not (truncation), so polars filters it
        inner = body["expr"]
        if "Literal" not in inner:
            raise _Untranslatable
        return _sql(inner, structs)
    if kind == "BinaryExpr":
        op = body["op"]
        if op in {"And", "LogicalAnd"}:
            return f"({_sql(body['left'], structs)} AND {_sql(body['right'], structs)})"
        if op in {"Or", "LogicalOr"}:
            return f"({_sql(body['left'], structs)} OR {_sql(body['right'], structs)})"
        if op in _COMPARISONS:
            for side in ("left", "right"):
                if "Literal" in body[side] and _literal_value(body[side]) is None:
                    raise _Untranslatable
            return f"({_sql(body['left'], structs)} {_COMPARISONS[op]} {_sql(body['right'], structs)})"
        raise _Untranslatable
    if kind == "Function":
        return _function(body["function"], body["input"], structs)
    raise _Untranslatable


def _function(function: Any, inputs: list[dict[str, Any]], structs: Structs) -> str:
    options: Any
    detail: Any
    name, options = (function, None) if isinstance(function, str) else next(iter(function.items()))
    if name == "StructExpr" and isinstance(options, dict) and "FieldByName" in options:
        return _field(inputs[0], options["FieldByName"], structs)
    if name == "Boolean":
        boolean, detail = (options, None) if isinstance(options, str) else next(iter(options.items()))
        column = inputs[0].get("Column")
        if boolean in {"IsNull", "IsNotNull"} and column in structs:
            return null_sql(column) if boolean == "IsNull" else f"(NOT {null_sql(column)})"
        if boolean == "IsNull":
            return f"({_sql(inputs[0], structs)} IS NULL)"
        if boolean == "IsNotNull":
            return f"({_sql(inputs[0], structs)} IS NOT NULL)"
        if boolean == "Not":
            return f"(NOT {_sql(inputs[0], structs)})"
        if boolean == "IsIn" and "Literal" in inputs[1]:
            values = _literal_value(inputs[1])
            if not isinstance(values, list) or not values or any(v is None for v in values):
                raise _Untranslatable
            value = _sql(inputs[0], structs)
            if any(isinstance(v, float) for v in values):  # the engine's IN tells -0.0 from 0.0; its = does not
                return f"({' OR '.join(f'{value} = {_sql_literal(v)}' for v in values)})"
            return f"({value} IN ({', '.join(_sql_literal(v) for v in values)}))"
        if boolean == "IsBetween":
            closed = detail["closed"] if isinstance(detail, dict) else "Both"
            low_op = ">=" if closed in {"Both", "Left"} else ">"
            high_op = "<=" if closed in {"Both", "Right"} else "<"
            value = _sql(inputs[0], structs)
            return f"({value} {low_op} {_sql(inputs[1], structs)} AND {value} {high_op} {_sql(inputs[2], structs)})"
        raise _Untranslatable
    if name == "StringExpr":
        string, detail = (options, None) if isinstance(options, str) else next(iter(options.items()))
        if "Literal" not in inputs[1]:
            raise _Untranslatable
        needle = _literal_value(inputs[1])
        if not isinstance(needle, str):
            raise _Untranslatable
        if string == "StartsWith":
            return f"starts_with({_sql(inputs[0], structs)}, {quote_literal(needle)})"
        if string == "EndsWith":
            return f"ends_with({_sql(inputs[0], structs)}, {quote_literal(needle)})"
        if string == "Contains" and isinstance(detail, dict) and detail.get("literal"):
            return f"(strpos({_sql(inputs[0], structs)}, {quote_literal(needle)}) > 0)"
    raise _Untranslatable


def _field(node: dict[str, Any], key: Any, structs: Structs) -> str:
    """SQL for ``pl.col(c).struct.field(key)`` of a JSON column ``c`` declared as a struct, typed as fetched."""
    column = node.get("Column")
    struct = structs.get(column) if isinstance(column, str) else None
    field = next((f for f in struct.fields if f.name == key), None) if struct is not None else None
    sql = field_sql(column, key, field.dtype) if field is not None else None
    if sql is None:
        raise _Untranslatable
    return sql


def _conjuncts(node: dict[str, Any]) -> list[dict[str, Any]]:
    body = node.get("BinaryExpr")
    if body and body["op"] in {"And", "LogicalAnd"}:
        return _conjuncts(body["left"]) + _conjuncts(body["right"])
    return [node]


def _bound(node: dict[str, Any], time_column: str) -> tuple[datetime | None, datetime | None]:
    """(lower, upper) half-open bounds a conjunct puts on ``time_column``, if it is ``time <op> literal``."""
    body = node.get("BinaryExpr")
    if not body or body["op"] not in {"Gt", "GtEq", "Lt", "LtEq"}:
        return None, None
    left, right, op = body["left"], body["right"], body["op"]
    if left != {"Column": time_column} or "Literal" not in right:
        return None, None
    try:
        value = _literal_value(right)
    except _Untranslatable:
        return None, None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None, None
    step = timedelta(microseconds=1)
    if op == "GtEq":
        return value, None
    if op == "Gt":
        return value + step, None
    if op == "Lt":
        return None, value
    return None, value + step


def translate(predicate: pl.Expr | None, *, time_column: str | None = None, structs: Structs | None = None) -> Pushdown:
    """SQL for the translatable conjuncts of ``predicate``, and the window its ``time_column`` bounds imply.

    ``structs``: JSON columns declared as structs; a filter on one of their fields becomes SQL on
    ``column ->> 'key'`` (see :mod:`logfire_io._fields`).
    """
    if predicate is None:
        return Pushdown(None)
    tree = json.loads(predicate.meta.serialize(format="json"))
    parts: list[str] = []
    low, high, complete = None, None, True
    for conjunct in _conjuncts(tree):
        try:
            sql = _sql(conjunct, structs or {})
        except Exception:  # any node we cannot read is simply not pushed: polars still filters locally
            sql = None
        if sql is None or sum(map(len, parts)) + len(sql) > _MAX_PUSHED_CHARS:
            complete = False
            continue
        parts.append(sql)
        if time_column is not None:
            bound_low, bound_high = _bound(conjunct, time_column)
            low = max(low, bound_low) if low and bound_low else (low or bound_low)
            high = min(high, bound_high) if high and bound_high else (high or bound_high)
    return Pushdown(" AND ".join(parts) or None, low, high, complete)
