"""SQL analysis with sqlglot: can a query be split by time, and its text with exact time bounds spliced in.

A query can be sliced when running it over each part of a time partition and concatenating the answers gives
the answer over the whole: a row query (projection, filters, JSON operators, inner/left/semi joins, subqueries)
whose rows each come from one row of a driving ``records``/``records_all``/``metrics`` table. Aggregates,
GROUP BY, DISTINCT, window functions, LIMIT/OFFSET, set operations and RIGHT/FULL OUTER joins change answer
when split, so they are refused with the reason.

The SQL that is sent is the user's text with each reference to a Logfire table replaced by a bounded derived
table, ``(SELECT * FROM records WHERE "start_timestamp" >= '…' AND "start_timestamp" < '…') AS records``,
keeping the user's alias; nothing else changes, byte for byte (see :mod:`logfire_io._splice`). The driving
table gets the slice's bounds, every other reference the user's whole window (an open side stays open), so a
joined row can neither leak in at the edges nor be lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from logfire_io._splice import Edit, apply_edits, statement_text, tokenize
from logfire_io.schema import TIME_COLUMNS

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "OrderKey",
    "SliceableQuery",
    "analyze",
    "bounded",
    "first_rows_sql",
    "histogram_sql",
    "output_order",
    "probe_sql",
    "quote_identifier",
    "stats_sql",
]

_TIME_ALIAS = "__logfire_t"
AGGREGATE_FUNCTIONS = frozenset(
    [
        "any_value",
        "approx_distinct",
        "approx_median",
        "approx_percentile_cont",
        "approx_percentile_cont_with_weight",
        "array_agg",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bool_and",
        "bool_or",
        "corr",
        "count",
        "covar",
        "covar_pop",
        "covar_samp",
        "cume_dist",
        "dense_rank",
        "first_value",
        "grouping",
        "lag",
        "last_value",
        "lead",
        "max",
        "mean",
        "median",
        "metric_avg",
        "metric_count",
        "metric_increase",
        "metric_max",
        "metric_merge",
        "metric_min",
        "metric_quantile",
        "metric_rate",
        "metric_sum",
        "min",
        "nth_value",
        "ntile",
        "percent_rank",
        "percentile_cont",
        "quantile_cont",
        "rank",
        "regr_avgx",
        "regr_avgy",
        "regr_count",
        "regr_intercept",
        "regr_r2",
        "regr_slope",
        "regr_sxx",
        "regr_sxy",
        "regr_syy",
        "row_number",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "sum",
        "var",
        "var_pop",
        "var_population",
        "var_samp",
        "var_sample",
    ]
)
"""Aggregate and window functions by name: DataFusion's and Logfire's ``metric_*`` (a test checks the list against
the local server's engine, which has both)."""


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal (embedded quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class OrderKey:
    """One key of a top-level ORDER BY, as the merge of split results must apply it.

    ``name`` is the output column's name as DataFusion spells it (unquoted names lower-cased), or None when
    the key is an ordinal (``ORDER BY 2``: ``position`` 2). ``nulls_first`` is SQL's rule made explicit: the
    user's ``NULLS FIRST/LAST``, else first for DESC and last for ASC (PostgreSQL's and DataFusion's default).
    """

    name: str | None
    position: int | None
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class _TableRef:
    """A reference to a Logfire table in the text: where its name stands and the name the query uses for it."""

    name: str
    """``records``, ``records_all`` or ``metrics``."""
    start: int
    end: int
    """Character span of the table name, ``end`` exclusive."""
    aliased: bool
    """Whether the user gave an alias (it then stays where it is, after the name)."""
    reference: str
    """How columns of this table are qualified: the alias or the table name, quoted."""


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
        The top-level ORDER BY, which the merge of slices re-applies.
    time_ordered
        Whether the first ORDER BY key is the driving time column ascending: slices in time order are then
        already in the query's order, and can be streamed.
    reads_other_tables
        Whether Logfire tables besides the driving one are read (joins, subqueries): they get the whole window.
    """

    sql: str
    reason: str | None
    table: str | None = None
    time_column: str | None = None
    order_by: tuple[OrderKey, ...] = ()
    time_ordered: bool = False
    reads_other_tables: bool = False
    _driving: _TableRef | None = None
    _others: tuple[_TableRef, ...] = ()
    _select: tuple[int, int, int, int, int] | None = None
    """The driving SELECT's text: start, projection start and end, ORDER BY start (or end), end."""
    _plain: bool = False
    """Whether the driving SELECT is the whole query, without a join: its output rows are its driving rows."""

    @property
    def sliceable(self) -> bool:
        return self.reason is None


def _refuse(sql: str, reason: str, refs: list[_TableRef] | str | None = None) -> SliceableQuery:
    """A query that is not split; its Logfire tables are still bounded to the window when they can be."""
    return SliceableQuery(sql, reason, _others=tuple(refs) if isinstance(refs, list) else ())


def _join_reason(select: exp.Select) -> str | None:
    for join in select.args.get("joins") or []:
        side = (join.side or "").upper()
        if side in ("RIGHT", "FULL"):
            return f"it has a {side} OUTER JOIN, whose unmatched rows do not come from the driving table"
    return None


def _aggregate(select: exp.Select) -> exp.Expression | None:
    """An aggregate call anywhere under ``select``: sqlglot's, or one only DataFusion knows by name."""
    found = select.find(exp.AggFunc)
    if found is not None:
        return found
    calls = (f for f in select.find_all(exp.Anonymous) if str(f.this).lower() in AGGREGATE_FUNCTIONS)
    return next(calls, None)


def _driving_select(select: exp.Select) -> exp.Select | str:
    """The SELECT that reads the base table, looking through plain derived-table wrappers; or a reason."""
    if _aggregate(select) is not None:
        return "it uses an aggregate, whose value depends on every row"
    if select.find(exp.Window) is not None:
        return "it uses a window function, whose value depends on every row"
    if select.args.get("group"):
        return "it has GROUP BY"
    if select.args.get("having"):
        return "it has HAVING"
    if select.args.get("distinct"):
        return "it has DISTINCT, which deduplicates across the whole result"
    if select.args.get("limit") or select.args.get("offset") or select.args.get("fetch"):
        return "it has LIMIT/OFFSET, which picks rows from the whole result"
    if select.args.get("with_"):
        return "it has a WITH clause"
    if (reason := _join_reason(select)) is not None:
        return reason
    source = select.args.get("from_")
    if source is None:
        return "it reads no table"
    inner = source.this
    if isinstance(inner, exp.Subquery) and isinstance(inner.this, exp.Select) and not select.args.get("joins"):
        return _driving_select(inner.this)
    if not isinstance(inner, exp.Table) or inner.name.lower() not in TIME_COLUMNS or inner.args.get("db"):
        return "its FROM is not the records, records_all or metrics table"
    return select


def _normalized(identifier: exp.Identifier) -> str:
    """An identifier as DataFusion resolves it: unquoted names are lower-cased."""
    return identifier.this if identifier.quoted else identifier.this.lower()


def _output_name(projection: exp.Expression) -> str | None:
    """The output column name DataFusion gives a projection, when it is certain (aliases and plain columns)."""
    if isinstance(projection, exp.Alias):
        return _normalized(projection.args["alias"])
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Identifier):
        return _normalized(projection.this)
    return None


def _order_key(key: exp.Expression, tree: exp.Select) -> tuple[str | None, int | None] | str:
    """Resolve one ORDER BY key to an output column as SQL does: an output name first, then a projected expression.

    Returns the output name (or position), or the reason the key cannot be tied to exactly one output column.
    """
    projections = tree.expressions
    outputs = [_output_name(p) for p in projections]
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        if any(p.is_star for p in projections) or not 1 <= int(key.this) <= len(projections):
            return "its ORDER BY names a position that cannot be checked against the output columns"
        return None, int(key.this)
    if isinstance(key, exp.Column) and not key.table and isinstance(key.this, exp.Identifier):
        name = _normalized(key.this)
        if outputs.count(name) == 1:  # an output name wins over an input column of the same name
            return name, None
    sources = [name for p, name in zip(projections, outputs, strict=True) if name and p.unalias() == key]
    if len(sources) == 1:
        return sources[0], None
    if isinstance(key, exp.Column) and isinstance(key.this, exp.Identifier) and not sources:
        name = _normalized(key.this)
        qualifier = key.table.lower() if key.table else None
        stars = [p for p in projections if p.is_star]
        covered = any(
            (s.table.lower() == qualifier if isinstance(s, exp.Column) and s.table else not tree.args.get("joins"))
            for s in stars
        )
        if covered and name not in outputs:  # a column that `*` (or `t.*`) outputs under its own name
            return name, None
    return "its ORDER BY is not on exactly one output column, so slices cannot be merged in order"


def _order_keys(tree: exp.Select) -> tuple[OrderKey, ...] | str:
    """The top-level ORDER BY resolved to output columns, or the reason it cannot be."""
    keys: list[OrderKey] = []
    for ordered in tree.args.get("order", exp.Order()).expressions:
        resolved = _order_key(ordered.this, tree)
        if isinstance(resolved, str):
            return resolved
        descending, nulls_first = bool(ordered.args.get("desc")), bool(ordered.args.get("nulls_first"))
        keys.append(OrderKey(*resolved, descending, nulls_first))
    return tuple(keys)


def _time_ordered(tree: exp.Select, target: exp.Select, time_column: str, keys: tuple[OrderKey, ...]) -> bool:
    """Whether the first ORDER BY key is, unambiguously, the driving time column ascending."""
    if tree is not target or not keys or keys[0].descending or tree.args.get("joins"):
        return False
    first, projections = keys[0], tree.expressions
    if first.position is not None:
        source = projections[first.position - 1].unalias()
    else:
        named = [p for p in projections if _output_name(p) == first.name]
        if len(named) > 1:
            return False
        if not named:  # the key is a column that `*` outputs
            return first.name == time_column
        source = named[0].unalias()
    return (
        isinstance(source, exp.Column)
        and isinstance(source.this, exp.Identifier)
        and _normalized(source.this) == time_column
    )


def _table_refs(tree: exp.Expression, sql: str) -> list[_TableRef] | str:
    """Every reference to a Logfire table in the text, or the reason they cannot all be bounded."""
    shadowed = {_normalized(cte.args["alias"].this) for cte in tree.find_all(exp.CTE) if cte.args.get("alias")}
    if shadowed & set(TIME_COLUMNS):
        return "it names a WITH query like a Logfire table"
    refs = []
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name not in TIME_COLUMNS or not isinstance(table.this, exp.Identifier):
            continue
        if table.this.quoted and table.this.this != name:
            continue  # "Records" is not the records table
        if table.args.get("db"):
            return f"it names the {name} table with a schema ({table.sql('postgres')}); write it as plain {name}"
        meta = table.this.meta
        if "start" not in meta or sql[meta["start"] : meta["end"] + 1].strip('"').lower() != name:
            return "its table references could not be located in the text"
        alias = table.args.get("alias")
        reference = quote_identifier(_normalized(alias.this)) if alias else quote_identifier(name)
        refs.append(_TableRef(name, meta["start"], meta["end"] + 1, alias is not None, reference))
    return refs


def _depths(tokens: list[Token]) -> list[int]:
    """The parenthesis depth of each token (an opening parenthesis has the depth outside it)."""
    depth, depths = 0, []
    for token in tokens:
        if token.token_type == TokenType.R_PAREN:
            depth -= 1
        depths.append(depth)
        if token.token_type == TokenType.L_PAREN:
            depth += 1
    return depths


def _select_span(tokens: list[Token], driving: _TableRef) -> tuple[int, int, int, int, int] | None:
    """Character positions of the SELECT that reads ``driving``: start, projection, ORDER BY, end."""
    depths = _depths(tokens)
    index = next((i for i, t in enumerate(tokens) if t.start == driving.start), None)
    if index is None:
        return None
    depth, from_ = depths[index], index - 1
    if from_ < 0 or tokens[from_].token_type != TokenType.FROM:
        return None
    start = None
    for i in range(from_ - 1, -1, -1):
        if depths[i] < depth:
            break
        if depths[i] == depth and tokens[i].token_type == TokenType.SELECT:
            start = i
            break
    if start is None:
        return None
    end, order = len(tokens), None
    for i in range(index + 1, len(tokens)):
        if depths[i] < depth or (depth == 0 and tokens[i].token_type == TokenType.SEMICOLON):
            end = i
            break
        if depths[i] == depth and tokens[i].token_type == TokenType.ORDER_BY:
            order = i
    end_char = tokens[end - 1].end + 1
    order_char = tokens[order].start if order is not None else end_char
    return tokens[start].start, tokens[start].end + 1, tokens[from_].start, order_char, end_char


def analyze(sql: str) -> SliceableQuery:
    """Parse ``sql`` and decide whether it can be sliced by time."""
    try:
        tokens = tokenize(sql)
        statements = sqlglot.parse(sql, read="postgres")
    except SqlglotError as exc:
        return _refuse(sql, f"it could not be parsed ({str(exc).splitlines()[0]})")
    except RecursionError:
        return _refuse(sql, "it is nested too deeply to analyse")
    if len(statements) != 1 or statements[0] is None:
        return _refuse(sql, "it is not exactly one statement")
    tree = statements[0]
    refs = _table_refs(tree, sql)
    if not isinstance(tree, exp.Select):
        reason = f"it is a {tree.key.upper()}, not a plain SELECT (set operations combine whole results)"
        return _refuse(sql, reason, refs)
    target = _driving_select(tree)
    if isinstance(target, str):
        return _refuse(sql, target, refs)
    keys = _order_keys(tree)
    if isinstance(keys, str):
        return _refuse(sql, keys, refs)
    if isinstance(refs, str):
        return _refuse(sql, refs)
    table = target.args["from_"].this
    driving = next((r for r in refs if r.start == table.this.meta.get("start")), None)
    span = _select_span(tokens, driving) if driving is not None else None
    if driving is None or span is None:
        return _refuse(sql, "its driving SELECT could not be located in the text")
    return SliceableQuery(
        sql,
        None,
        driving.name,
        TIME_COLUMNS[driving.name],
        keys,
        _time_ordered(tree, target, TIME_COLUMNS[driving.name], keys),
        len(refs) > 1,
        driving,
        tuple(r for r in refs if r is not driving),
        span,
        _plain=target is tree and not tree.args.get("joins"),
    )


def output_order(sql: str) -> tuple[OrderKey, ...] | None:
    """The top-level ORDER BY of ``sql`` by output column names: ``()`` without one, None if it cannot be named.

    Lets a wrapper around the query (``SELECT cols FROM (sql) AS q WHERE ...``) order its rows as ``sql`` does.
    """
    try:
        tokens = tokenize(sql)
        tree = sqlglot.parse_one(sql, read="postgres")
    except (SqlglotError, RecursionError):
        return None
    depths = _depths(tokens)
    if not any(t.token_type == TokenType.ORDER_BY and d == 0 for t, d in zip(tokens, depths, strict=True)):
        return ()
    keys = _order_keys(tree) if isinstance(tree, exp.Select) else None
    if keys is None or isinstance(keys, str):
        return None
    named = []
    for key in keys:
        name = key.name if key.position is None else _output_name(tree.expressions[key.position - 1])
        if name is None:
            return None
        named.append(OrderKey(name, None, key.descending, key.nulls_first))
    return tuple(named)


def _timestamp(value: datetime) -> str:
    return "'" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'::timestamptz"


def _bounded_table(ref: _TableRef, low: datetime | None, high: datetime | None) -> Edit | None:
    """The edit that replaces ``ref`` by its rows in ``[low, high)``; None when both sides are open."""
    column = quote_identifier(TIME_COLUMNS[ref.name])
    conditions = [f"{column} >= {_timestamp(low)}" if low else "", f"{column} < {_timestamp(high)}" if high else ""]
    where = " AND ".join(c for c in conditions if c)
    if not where:
        return None
    derived = f"(SELECT * FROM {ref.name} WHERE {where})"
    return Edit(ref.start, ref.end, derived if ref.aliased else f"{derived} AS {ref.name}")


def _edits(
    query: SliceableQuery,
    low: datetime | None,
    high: datetime | None,
    window: tuple[datetime | None, datetime | None],
) -> list[Edit]:
    driving = [(query._driving, low, high)] if query._driving is not None else []
    bounded_refs = [*driving, *((ref, *window) for ref in query._others)]
    return [e for ref, a, b in bounded_refs if (e := _bounded_table(ref, a, b)) is not None]


def bounded(
    query: SliceableQuery,
    low: datetime | None,
    high: datetime | None,
    window: tuple[datetime | None, datetime | None] | None = None,
) -> str:
    """``query``'s text with its driving table bounded to ``[low, high)`` (None: an open side).

    Every other reference to a Logfire table is bounded to ``window`` (default: the same bounds); in a query that
    is not split, every reference is.
    """
    return apply_edits(query.sql, _edits(query, low, high, window or (low, high)))


def _driving_rows(query: SliceableQuery, low: datetime | None, high: datetime | None, window: tuple) -> str:
    """The driving SELECT projecting only its time column (as ``__logfire_t``), ORDER BY cut, tables bounded."""
    assert query._select is not None
    assert query._driving is not None
    start, projection_start, projection_end, order_start, end = query._select
    time = f"{query._driving.reference}.{quote_identifier(query.time_column or '')}"
    projection = Edit(projection_start, projection_end, f" {time} AS {_TIME_ALIAS} ")
    cut = Edit(order_start, end, "")
    kept = [
        e
        for e in _edits(query, low, high, window)
        if not (projection_start <= e.start < projection_end or order_start <= e.start < end)
    ]
    edits = [Edit(e.start - start, e.end - start, e.text) for e in [projection, cut, *kept]]
    return apply_edits(query.sql[start:end], edits)


def stats_sql(query: SliceableQuery, low: datetime | None, high: datetime | None, window: tuple | None = None) -> str:
    """``SELECT min, max, count`` of the driving table's time over the rows the query's driving SELECT keeps."""
    rows = _driving_rows(query, low, high, window or (low, high))
    return f"SELECT min({_TIME_ALIAS}) AS lo, max({_TIME_ALIAS}) AS hi, count(*) AS n FROM (\n{rows}\n) AS __logfire_q"


def histogram_sql(
    query: SliceableQuery, low: datetime, high: datetime, width_us: int, window: tuple | None = None
) -> str:
    """Row counts of the driving SELECT per ``width_us`` bucket from ``low`` (bucket start as ``b``)."""
    rows = _driving_rows(query, low, high, window or (low, high))
    bucket = f"date_bin(INTERVAL '{width_us} microseconds', {_TIME_ALIAS}, {_timestamp(low)})"
    return f"SELECT {bucket} AS b, count(*) AS n FROM (\n{rows}\n) AS __logfire_q GROUP BY 1"


def first_rows_sql(
    query: SliceableQuery, low: datetime | None, high: datetime | None, window: tuple | None = None
) -> str | None:
    """``bounded(query, low, high, window)`` in time order, the driving time appended as ``__logfire_t``; or None.

    Asked with a limit, it answers the window's first rows in time order, so every row before the last one's
    time is complete and kept. None where that does not hold exactly: a nested or joined driving SELECT (its
    output rows are not its driving rows, one each) or an ORDER BY whose first key is not the time ascending.
    """
    if not query._plain or (query.order_by and not query.time_ordered):
        return None
    assert query._select is not None
    assert query._driving is not None
    _, _, projection_end, order_start, end = query._select
    time = f"{query._driving.reference}.{quote_identifier(query.time_column or '')}"
    edits = [
        *_edits(query, low, high, window or (low, high)),
        Edit(projection_end, projection_end, f", {time} AS {_TIME_ALIAS} "),
    ]
    if order_start == end:  # no ORDER BY: time order is one of the orders the query allows
        edits.append(Edit(end, end, f" ORDER BY {_TIME_ALIAS}"))
    return apply_edits(query.sql, edits)


def probe_sql(sql: str) -> str:
    """A query answering ``sql``'s columns and no row, to learn its schema before reading."""
    return f"SELECT * FROM (\n{statement_text(sql)}\n) AS __logfire_probe LIMIT 0"
