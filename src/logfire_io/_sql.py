"""SQL analysis with sqlglot: can a query be split by time, and how to add exact time bounds to it.

A query can be sliced when running it over each part of a time partition and concatenating the answers gives
the answer over the whole: a row query (projection, filters, JSON operators, joins) whose rows each come from
one row of a driving ``records``/``records_all``/``metrics`` table. Aggregates, GROUP BY, DISTINCT, window
functions, LIMIT/OFFSET and set operations change answer when split, so they are refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError

from logfire_io.schema import TIME_COLUMNS

__all__ = ["Logfire", "SliceableQuery", "analyze", "bounded", "histogram_sql", "quote_identifier", "stats_sql"]


class Logfire(Postgres):
    """PostgreSQL as sqlglot writes it, with the spellings Logfire's DataFusion engine expects.

    Used to print every query we rewrite, so a user's ``array_has(tags, 'x')`` or ``now()`` reaches the service
    as written, not as sqlglot's PostgreSQL equivalents.
    """

    class Generator(Postgres.Generator):
        TRANSFORMS = {  # noqa: RUF012 - sqlglot's extension point is this class attribute
            **Postgres.Generator.TRANSFORMS,
            exp.ArrayContains: lambda self, e: self.func("array_has", e.this, e.expression),
            exp.CurrentTimestamp: lambda self, e: "now()",
            exp.Count: lambda self, e: self.func("count", e.this or exp.Star()),
        }


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SliceableQuery:
    """A parsed query that can be split by time, or the reason it cannot.

    Attributes
    ----------
    reason
        Why the query cannot be sliced, or None when it can.
    table
        The driving table (``records``, ``records_all`` or ``metrics``).
    time_column
        Its time column, the one the slices bound.
    order_by
        Output column names of a top-level ORDER BY (the merge re-sorts by them), in order, with descending flags.
    """

    sql: str
    reason: str | None
    table: str | None = None
    time_column: str | None = None
    order_by: tuple[tuple[str, bool], ...] = ()
    reads_other_tables: bool = False
    """Whether tables besides the driving one are read (joins, subqueries): they need the whole window."""
    _tree: exp.Select | None = None
    _target: exp.Select | None = None
    _alias: exp.Identifier | None = None

    @property
    def sliceable(self) -> bool:
        return self.reason is None


def _refuse(sql: str, reason: str) -> SliceableQuery:
    return SliceableQuery(sql, reason)


def _driving_select(select: exp.Select) -> exp.Select | str:
    """The SELECT that reads the base table, looking through plain derived-table wrappers; or a reason."""
    for node_type, what in (
        (exp.AggFunc, "an aggregate"),
        (exp.Window, "a window function"),
    ):
        if select.find(node_type) is not None:
            return f"it uses {what}, whose value depends on every row"
    if select.args.get("group"):
        return "it has GROUP BY"
    if select.args.get("having"):
        return "it has HAVING"
    if select.args.get("distinct"):
        return "it has DISTINCT, which deduplicates across the whole result"
    if select.args.get("limit") or select.args.get("offset"):
        return "it has LIMIT/OFFSET, which picks rows from the whole result"
    if select.args.get("with_"):
        return "it has a WITH clause"
    source = select.args.get("from_")
    if source is None:
        return "it reads no table"
    inner = source.this
    if isinstance(inner, exp.Subquery) and isinstance(inner.this, exp.Select) and not select.args.get("joins"):
        return _driving_select(inner.this)
    if not isinstance(inner, exp.Table) or inner.name.lower() not in TIME_COLUMNS or inner.args.get("db"):
        return "its FROM is not the records, records_all or metrics table"
    return select


def analyze(sql: str) -> SliceableQuery:
    """Parse ``sql`` and decide whether it can be sliced by time."""
    try:
        statements = sqlglot.parse(sql, read="postgres")
    except SqlglotError as exc:
        return _refuse(sql, f"it could not be parsed ({str(exc).splitlines()[0]})")
    except RecursionError:
        return _refuse(sql, "it is nested too deeply to analyse")
    if len(statements) != 1 or statements[0] is None:
        return _refuse(sql, "it is not exactly one statement")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        return _refuse(sql, f"it is a {tree.key.upper()}, not a plain SELECT (set operations combine whole results)")
    target = _driving_select(tree)
    if isinstance(target, str):
        return _refuse(sql, target)
    table = target.args["from_"].this
    name = table.name.lower()
    order: list[tuple[str, bool]] = []
    output_names = {e.alias_or_name for e in tree.expressions}
    for ordered in tree.args.get("order", exp.Order()).expressions:
        key = ordered.this
        column = key.name if isinstance(key, exp.Column) else None
        if column is None or (column not in output_names and "*" not in output_names):
            return _refuse(sql, "its ORDER BY is not on output columns, so slices cannot be merged in order")
        order.append((column, bool(ordered.args.get("desc"))))
    others = sum(1 for _ in tree.find_all(exp.Table)) > 1
    alias = table.args["alias"].this if table.args.get("alias") else table.this
    return SliceableQuery(sql, None, name, TIME_COLUMNS[name], tuple(order), others, tree, target, alias)


def _timestamp(value: datetime) -> exp.Expression:
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMPTZ"))


def _time_column(query: SliceableQuery) -> exp.Column:
    assert query._alias is not None
    return exp.Column(this=exp.to_identifier(query.time_column, quoted=True), table=query._alias.copy())


def bounded(query: SliceableQuery, low: datetime | None, high: datetime | None) -> str:
    """``query``'s SQL with ``low <= time < high`` added to the driving table's WHERE (None: open side)."""
    assert query._tree is not None
    assert query._target is not None
    tree = query._tree.copy()
    target = tree if query._target is query._tree else _find_same(tree, query._target, query._tree)
    conditions: list[exp.Expression] = []
    if low is not None:
        conditions.append(exp.GTE(this=_time_column(query), expression=_timestamp(low)))
    if high is not None:
        conditions.append(exp.LT(this=_time_column(query), expression=_timestamp(high)))
    for condition in conditions:
        target.where(condition, append=True, copy=False)
    return tree.sql(dialect=Logfire)


def _find_same(copy: exp.Expression, original_target: exp.Select, original_root: exp.Expression) -> exp.Select:
    """The node in ``copy`` at the same position as ``original_target`` in ``original_root``."""
    for original, copied in zip(original_root.walk(), copy.walk(), strict=True):
        if original is original_target:
            assert isinstance(copied, exp.Select)
            return copied
    msg = "the driving SELECT vanished from its copy"
    raise AssertionError(msg)


def _driving_from(query: SliceableQuery, low: datetime | None, high: datetime | None) -> exp.Select:
    """A SELECT with the driving table's FROM, JOINs and WHERE, bounds added, and no projection yet."""
    assert query._target is not None
    target = query._target.copy()
    select = exp.Select()
    select.set("from_", target.args["from_"])
    if target.args.get("joins"):
        select.set("joins", target.args["joins"])
    if target.args.get("where"):
        select.set("where", target.args["where"])
    for condition in (
        exp.GTE(this=_time_column(query), expression=_timestamp(low)) if low else None,
        exp.LT(this=_time_column(query), expression=_timestamp(high)) if high else None,
    ):
        if condition is not None:
            select.where(condition, append=True, copy=False)
    return select


def stats_sql(query: SliceableQuery, low: datetime | None, high: datetime | None) -> str:
    """``SELECT min(time), max(time), count(*)`` over the rows the driving table contributes."""
    select = _driving_from(query, low, high)
    column = _time_column(query)
    select.select(
        exp.alias_(exp.Min(this=column), "lo"),
        exp.alias_(exp.Max(this=column.copy()), "hi"),
        exp.alias_(exp.Count(this=exp.Star()), "n"),
        copy=False,
    )
    return select.sql(dialect=Logfire)


def histogram_sql(query: SliceableQuery, low: datetime, high: datetime, width_us: int) -> str:
    """Row counts of the driving table per ``width_us`` bucket from ``low`` (bucket start as ``b``)."""
    select = _driving_from(query, low, high)
    bucket = exp.Anonymous(
        this="date_bin",
        expressions=[
            exp.Interval(this=exp.Literal.string(f"{width_us} microseconds")),
            _time_column(query),
            _timestamp(low),
        ],
    )
    select.select(exp.alias_(bucket, "b"), exp.alias_(exp.Count(this=exp.Star()), "n"), copy=False)
    select.group_by(exp.column("b"), copy=False)
    return select.sql(dialect=Logfire)
