"""Rewrite Logfire's SQL dialect into SQL that DataFusion's Python bindings can run.

Logfire's engine is DataFusion plus ``datafusion-functions-json``, whose operators (``->``, ``->>``, ``?``) need a
planner hook that Python cannot register. So the query is parsed with sqlglot (PostgreSQL dialect, which Logfire
follows), the Logfire-only pieces become plain function calls, and it is printed back with a generator that
keeps DataFusion's spellings (``array_has``, ``now()``). A query sqlglot cannot parse is passed on unchanged, so
that DataFusion, not this module, reports what is wrong with it.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from logfire_io._sql import Logfire
from logfire_io.schema import LEVEL_NUMBERS

__all__ = ["rewrite"]

_FLOAT_TYPES = {
    exp.DataType.Type.DECIMAL,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.BIGDECIMAL,
}
_INT_TYPES = {exp.DataType.Type.INT, exp.DataType.Type.BIGINT, exp.DataType.Type.SMALLINT}
_TEXT_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR}
_EPOCH = "1970-01-01T00:00:00Z"


def _json_key(path: exp.Expression) -> exp.Expression:
    """The key of a ``->``/``->>`` operand: a string literal, or the expression itself (a column key)."""
    if isinstance(path, exp.JSONPath):
        parts = [p for p in path.expressions if not isinstance(p, exp.JSONPathRoot)]
        if len(parts) == 1 and isinstance(parts[0], exp.JSONPathKey | exp.JSONPathSubscript):
            return exp.Literal.string(str(parts[0].this))
        return exp.Literal.string(path.sql("postgres").strip("'"))
    if isinstance(path, exp.Literal):
        return exp.Literal.string(str(path.this))
    return path


def _rewritten(node: exp.Expression) -> exp.Expression:
    """Rewrite the subtree under a replaced node (sqlglot's transform does not descend into replacements)."""
    return node.transform(_rewrite_node, copy=False)


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=[_rewritten(a) for a in args])


def _json_call(name: str, node: exp.Expression) -> exp.Expression:
    return _call(name, node.this, _json_key(node.expression))


def _level_literal(node: exp.Expression) -> exp.Expression | None:
    if isinstance(node, exp.Literal) and node.is_string and node.this.lower() in LEVEL_NUMBERS:
        return exp.Literal.number(LEVEL_NUMBERS[node.this.lower()])
    return None


def _is_level(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == "level"


def _rewrite_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.JSONExtract | exp.Paren):
        inner = node.this.unnest()
        if isinstance(inner, exp.JSONExtract):
            target = node.to.this
            name = (
                "json_get_float"
                if target in _FLOAT_TYPES
                else "json_get_int"
                if target in _INT_TYPES
                else "json_get_str"
                if target in _TEXT_TYPES
                else "json_get_bool"
                if target == exp.DataType.Type.BOOLEAN
                else None
            )
            if name is not None:
                call = _json_call(name, inner)
                return call if target not in _INT_TYPES else exp.cast(call, node.to)
    if isinstance(node, exp.JSONExtractScalar):
        return _json_call("json_as_text", node)
    if isinstance(node, exp.JSONExtract):
        return _json_call("json_get", node)
    if isinstance(node, exp.JSONBContainsTopKey):
        return _call("json_contains", node.this, node.expression)
    if isinstance(node, exp.Binary) and isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
        if _is_level(node.left) and (number := _level_literal(node.right)) is not None:
            node.set("expression", number)
        elif _is_level(node.right) and (number := _level_literal(node.left)) is not None:
            node.set("this", number)
    if isinstance(node, exp.In) and _is_level(node.this):
        numbers = [_level_literal(e) for e in node.expressions]
        if numbers and all(n is not None for n in numbers):
            node.set("expressions", numbers)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "level_num" and len(node.expressions) == 1:
        number = _level_literal(node.expressions[0])
        if number is not None:
            return number
    if isinstance(node, exp.Anonymous) and node.name.lower() == "level_name" and len(node.expressions) == 1:
        # Python UDFs have exact signatures: give level_name one integer width whatever the argument's.
        return _call("level_name", exp.cast(node.expressions[0], exp.DataType.build("BIGINT")))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "time_bucket" and len(node.expressions) == 2:
        width, value = node.expressions
        if isinstance(width, exp.Literal):
            width = exp.Interval(this=exp.Literal.string(width.this))
        origin = exp.cast(exp.Literal.string(_EPOCH), exp.DataType.build("TIMESTAMPTZ"))
        return _call("date_bin", width, value, origin)
    return node


def _has_json_operator(node: exp.Expression) -> bool:
    return any(isinstance(n, exp.JSONExtract | exp.JSONExtractScalar) for n in node.walk())


def _alias_json_projections(tree: exp.Expression) -> None:
    """Name unaliased JSON projections as Logfire does (``attributes ->> 'http.route'``)."""
    for select in tree.find_all(exp.Select):
        for i, projection in enumerate(select.expressions):
            if not isinstance(projection, exp.Alias) and _has_json_operator(projection):
                name = projection.sql("postgres")
                select.expressions[i] = exp.alias_(projection, exp.to_identifier(name, quoted=True))


def rewrite(sql: str) -> str:
    """Translate one Logfire SQL query into DataFusion SQL; unparsable input is returned unchanged."""
    try:
        statements = sqlglot.parse(sql, read="postgres")
    except SqlglotError:
        return sql
    if len(statements) != 1 or statements[0] is None:
        return sql
    tree = statements[0]
    _alias_json_projections(tree)
    tree = tree.transform(_rewrite_node)
    return tree.sql(dialect=Logfire)
