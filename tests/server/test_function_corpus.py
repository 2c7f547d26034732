"""Every DataFusion function and operator means on the local server what it means in plain DataFusion.

The functions are listed by the engine itself (``information_schema.routines`` and ``parameters``), one call
each, with arguments taken from the parameter types (columns of ``records`` where a column has the type); the
server's ``/v2/query`` Arrow answer must equal a plain DataFusion session's answer over the same table: the same
values and types, or both fail. Calls that run are asked 25 to a query (one column each), so the whole corpus
runs in the suite. Volatile functions (``random()``, ``now()``...) are compared by type only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import httpx
import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext

from tests.server.corpus_data import corpus_records, post_arrow

TABLE = corpus_records()
_CLOCK = {"now", "current_time", "current_date"}
"""Deterministic per query, but the server and the plain session run at different instants."""

_ROW_ORDER = {"any_value", "first_value", "last_value", "nth_value", "array_agg", "string_agg"}
"""Aggregates whose answer depends on the order rows reach them: the server scans its tables in parallel
partitions, so which row comes first is not fixed (the plain session scans one)."""

_ARGUMENTS = {
    "Int8": "CAST(level AS TINYINT)",
    "Int16": "CAST(level AS SMALLINT)",
    "Int32": "level",
    "Int64": "CAST(http_response_status_code AS BIGINT)",
    "UInt8": "CAST(level AS TINYINT UNSIGNED)",
    "UInt16": "CAST(level AS SMALLINT UNSIGNED)",
    "UInt32": "CAST(level AS INT UNSIGNED)",
    "UInt64": "CAST(level AS BIGINT UNSIGNED)",
    "Float16": "arrow_cast(duration, 'Float16')",
    "Float32": "CAST(duration AS REAL)",
    "Float64": "duration",
    "String": "message",
    "Boolean": "is_exception",
    "Date": "day",
    "Binary": "CAST(span_name AS BYTEA)",
    "Null": "NULL",
    "List(String)": "tags",
    "List(Int64)": "make_array(CAST(level AS BIGINT), 2)",
    "List(Date)": "make_array(day)",
    "Interval(DayTime)": "INTERVAL '90 minutes'",
    "Interval(MonthDayNano)": "INTERVAL '1 month 2 days'",
}
_SPECIAL = {
    # Arguments whose meaning is a fixed vocabulary or format: the generic column would fail both ways.
    "date_part": ["'hour'", "start_timestamp"],
    "datepart": ["'hour'", "start_timestamp"],
    "date_trunc": ["'hour'", "start_timestamp"],
    "datetrunc": ["'hour'", "start_timestamp"],
    "to_char": ["start_timestamp", "'%Y-%m %H'"],
    "date_format": ["start_timestamp", "'%Y-%m %H'"],
    "to_timestamp": ["'02/03/2026 10:11'", "'%d/%m/%Y %H:%M'"],
    "to_timestamp_seconds": ["'02/03/2026 10:11'", "'%d/%m/%Y %H:%M'"],
    "to_timestamp_millis": ["'02/03/2026 10:11'", "'%d/%m/%Y %H:%M'"],
    "to_timestamp_micros": ["'02/03/2026 10:11'", "'%d/%m/%Y %H:%M'"],
    "to_timestamp_nanos": ["'02/03/2026 10:11'", "'%d/%m/%Y %H:%M'"],
    "to_date": ["'02/03/2026'", "'%d/%m/%Y'"],
    "to_time": ["'10:11:12'"],
    "to_unixtime": ["start_timestamp"],
    "to_local_time": ["start_timestamp"],
    "date_bin": ["INTERVAL '15 minutes'", "start_timestamp"],
    "make_date": ["2026", "level % 12 + 1", "3"],
    "factorial": ["level % 10"],
    "make_time": ["10", "level", "3"],
    "from_unixtime": ["CAST(level AS BIGINT) * 100000"],
    "arrow_cast": ["level", "'Int64'"],
    "arrow_try_cast": ["message", "'Int64'"],
    "arrow_metadata": ["message"],
    "get_field": ["named_struct('a', level)", "'a'"],
    "regexp_like": ["message", "'^1'"],
    "regexp_match": ["message", "'^(1)(.*)$'"],
    "regexp_replace": ["message", "'1'", "'one'"],
    "regexp_count": ["message", "'1'"],
    "regexp_instr": ["message", "'1'"],
    "split_part": ["'a,b,c'", "','", "level % 3 + 1"],
    "substr_index": ["'a.b.c'", "'.'", "2"],
    "substring_index": ["'a.b.c'", "'.'", "2"],
    "encode": ["message", "'hex'"],
    "decode": ["'6869'", "'hex'"],
    "digest": ["message", "'sha256'"],
    "to_hex": ["CAST(level AS BIGINT)"],
    "array_element": ["tags", "1"],
    "list_element": ["tags", "1"],
    "array_extract": ["tags", "1"],
    "list_extract": ["tags", "1"],
    "array_slice": ["tags", "1", "2"],
    "list_slice": ["tags", "1", "2"],
    "array_has": ["tags", "'a'"],
    "list_has": ["tags", "'a'"],
    "array_contains": ["tags", "'a'"],
    "array_position": ["tags", "'a'"],
    "list_position": ["tags", "'a'"],
    "array_positions": ["tags", "'a'"],
    "list_positions": ["tags", "'a'"],
    "array_remove": ["tags", "'a'"],
    "list_remove": ["tags", "'a'"],
    "array_to_string": ["tags", "','"],
    "list_to_string": ["tags", "','"],
    "array_join": ["tags", "','"],
    "list_join": ["tags", "','"],
    "string_to_array": ["'a,b,c'", "','"],
    "string_to_list": ["'a,b,c'", "','"],
    "generate_series": ["1", "level"],
    "range": ["1", "level"],
    "approx_percentile_cont": ["duration", "0.5"],
    "approx_percentile_cont_with_weight": ["duration", "level", "0.5"],
    "percentile_cont": ["duration", "0.5"],
    "quantile_cont": ["duration", "0.5"],
    "nth_value": ["duration", "2"],
    "string_agg": ["message", "','"],
    "listagg": ["message", "','"],
    "overlay": ["message", "'xx'", "1"],
    "power": ["duration", "2"],
    "pow": ["duration", "2"],
    "log": ["10", "duration"],
    "round": ["duration", "2"],
    "trunc": ["duration", "1"],
    "nvl2": ["duration", "1", "2"],
    "nullif": ["level", "9"],
    "struct": ["level", "message"],
    "named_struct": ["'a'", "level"],
    "map": ["make_array('k')", "make_array(level)"],
    "make_map": ["'k'", "level"],
    "map_extract": ["map(make_array('k'), make_array(level))", "'k'"],
    "element_at": ["map(make_array('k'), make_array(level))", "'k'"],
    "map_keys": ["map(make_array('k'), make_array(level))"],
    "map_values": ["map(make_array('k'), make_array(level))"],
    "map_entries": ["map(make_array('k'), make_array(level))"],
    "union_extract": ["message", "'a'"],
    "union_tag": ["message"],
    "version": [],
}
_OPERATORS = [
    *(f"level {op} 4" for op in ["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]),
    *(f"duration {op} 0.5" for op in ["+", "-", "*", "/", "%"]),
    *(f"level {op} 9" for op in ["=", "<>", "!=", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"]),
    *(f"message {op} '1%'" for op in ["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "~~", "~~*", "!~~", "!~~*"]),
    *(f"message {op} '^1'" for op in ["~", "~*", "!~", "!~*", "SIMILAR TO"]),
    "message || span_name",
    "message || level",
    "tags || make_array('z')",
    "tags @> make_array('a')",
    "make_array('a') <@ tags",
    "is_exception AND level > 5",
    "is_exception OR level > 5",
    "NOT is_exception",
    "-level",
    "+duration",
    "duration IS NULL",
    "duration IS NOT NULL",
    "is_exception IS TRUE",
    "is_exception IS NOT FALSE",
    "is_exception IS UNKNOWN",
    "level BETWEEN 5 AND 13",
    "level NOT BETWEEN 5 AND 13",
    "level IN (1, 9, 21)",
    "message NOT IN ('1', '2')",
    "CASE WHEN level > 9 THEN 'hi' WHEN level > 5 THEN 'mid' ELSE 'lo' END",
    "CASE level WHEN 9 THEN 'info' ELSE 'other' END",
    "CAST(level AS DOUBLE)",
    "TRY_CAST(message AS INT)",
    "level::text",
    "message::numeric",
    "tags[1]",
    "named_struct('a', level)['a']",
    "start_timestamp AT TIME ZONE 'Europe/Paris'",
    "end_timestamp - start_timestamp",
    "start_timestamp + INTERVAL '1 day'",
    "day - 1",
    "start_timestamp > now() - INTERVAL '10 years'",
    "SELECT level AS v FROM records WHERE level IN (SELECT level FROM records r WHERE r.level > 9) ORDER BY message",
    "SELECT level AS v FROM records WHERE EXISTS (SELECT 1 FROM records r WHERE r.level > 20) ORDER BY message",
    "(SELECT max(level) FROM records)",
    "'it''s' || $$dollar$$",
    "E'tab\\there'",
    "1.5e3 + level",
    "INTERVAL '1 hour' + INTERVAL '2 minutes'",
]
_GUESSES = [
    ["tags"],
    ["tags", "'a'"],
    ["tags", "tags"],
    ["tags", "1"],
    ["tags", "1", "2"],
    ["tags", "'a'", "'b'"],
    ["tags", "'a'", "1"],
    ["'a'", "tags"],
    ["tags", "'a'", "'b'", "1"],
    ["make_array(duration, 1.0)"],
    ["make_array(duration, 1.0)", "make_array(2.0, 3.0)"],
    ["make_array(duration, 1.0)", "2.0"],
    ["make_array(make_array(1, 2), make_array(level))"],
    ["duration"],
    ["level", "2"],
    ["level", "message"],
    ["message", "span_name"],
    ["message", "'Int64'"],
    ["message", "'k'", "'v'"],
]
"""Argument lists tried for functions whose signature DataFusion describes as user-defined (no types)."""


@dataclass(frozen=True)
class Case:
    """One function or operator: the expression that exercises it, and how its answer is compared."""

    name: str
    expression: str
    aggregate: bool = False
    deterministic: bool = True
    runs: bool = True
    """Whether plain DataFusion answers it (if not, the server must fail too)."""
    whole: str | None = None
    """A whole query, for what cannot stand in a select list (subqueries)."""

    @property
    def sql(self) -> str:
        return self.whole or _select([self])


def _select(cases: list[Case]) -> str:
    """One query answering every case in its own column ``v<i>``, rows in a fixed order."""
    columns = ", ".join(f"{c.expression} AS v{i}" for i, c in enumerate(cases))
    return f"SELECT {columns} FROM records" + ("" if cases[0].aggregate else " ORDER BY message")


def _plain_context(*, information_schema: bool = False) -> SessionContext:
    """A plain DataFusion session over the same table, with the server's settings for types and time zone."""
    config = (
        SessionConfig()
        .with_target_partitions(2)
        .with_information_schema(information_schema)
        .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
        .set("datafusion.optimizer.expand_views_at_output", "true")
        .set("datafusion.execution.time_zone", "UTC")
    )
    ctx = SessionContext(config)
    ctx.register_record_batches("records", [TABLE.to_batches()])
    return ctx


def _signatures(ctx: SessionContext) -> dict[str, tuple[str, bool, list[list[tuple[str, bool]]]]]:
    """Each scalar and aggregate function: its type, determinism and parameter lists (type, variadic)."""
    routines = ctx.sql(
        "SELECT DISTINCT routine_name, function_type, is_deterministic FROM information_schema.routines"
        " WHERE function_type IN ('SCALAR', 'AGGREGATE')"
    ).to_pylist()
    parameters = ctx.sql(
        "SELECT specific_name, rid, ordinal_position, data_type, is_variadic FROM information_schema.parameters"
        " WHERE parameter_mode = 'IN' ORDER BY specific_name, rid, ordinal_position"
    ).to_pylist()
    by_name: dict[str, dict[int, list[tuple[str, bool]]]] = {}
    for p in parameters:
        by_name.setdefault(p["specific_name"], {}).setdefault(p["rid"], []).append((p["data_type"], p["is_variadic"]))
    return {
        r["routine_name"]: (
            r["function_type"],
            bool(r["is_deterministic"]),
            list(by_name.get(r["routine_name"], {}).values()),
        )
        for r in routines
    }


def _argument(data_type: str) -> str | None:
    if data_type.startswith("Timestamp"):
        return "start_timestamp"
    if data_type.startswith("Duration"):
        return "end_timestamp - start_timestamp"
    if data_type.startswith("Time("):
        return "CAST('10:11:12' AS TIME)"
    if data_type.startswith("Decimal"):
        return "CAST(duration AS DECIMAL(20, 6))"
    return _ARGUMENTS.get(data_type)


def _runs(ctx: SessionContext, sql: str) -> bool:
    try:
        ctx.sql(sql).collect()
    except Exception:  # any DataFusion failure means this signature does not fit
        return False
    return True


def _function_cases() -> list[Case]:
    """One case per function: the first argument list that plain DataFusion accepts."""
    ctx = _plain_context(information_schema=True)
    cases = []
    for name, (kind, deterministic, signatures) in sorted(_signatures(ctx).items()):
        candidates = [_SPECIAL[name]] if name in _SPECIAL else []
        for signature in signatures or [[]]:
            arguments = [_argument(t) for t, _ in signature]
            if all(a is not None for a in arguments):
                candidates.append([a for a in arguments if a is not None])
        candidates += _GUESSES
        tried = [
            Case(
                name,
                f"{name}({', '.join(arguments)})",
                kind == "AGGREGATE",
                deterministic and name not in _CLOCK | _ROW_ORDER,
            )
            for arguments in candidates
        ]
        chosen = next((c for c in tried if _runs(ctx, c.sql)), None)
        cases.append(chosen or replace(tried[0], runs=False))
    return cases


def _operator_cases() -> list[Case]:
    return [
        Case(f"op {i}: {expr}", expr, whole=expr if expr.startswith("SELECT") else None)
        for i, expr in enumerate(_OPERATORS)
    ]


def _batches(cases: list[Case], size: int = 25) -> list[list[Case]]:
    """Cases that run, many to a query (a query per case would dominate the suite's time)."""
    batches = []
    for aggregate in (False, True):
        group = [c for c in cases if c.runs and c.whole is None and c.aggregate == aggregate]
        batches += [group[i : i + size] for i in range(0, len(group), size)]
    return batches


FUNCTIONS = _function_cases()
OPERATORS = _operator_cases()
BATCHES = _batches([*FUNCTIONS, *OPERATORS])
SINGLES = [c for c in [*FUNCTIONS, *OPERATORS] if not c.runs or c.whole is not None]


def _plain(sql: str) -> pa.Table | str:
    try:
        return _plain_context().sql(sql).to_arrow_table()
    except Exception as exc:  # the failure itself is what is compared
        return str(exc)


def _values(column: pa.ChunkedArray) -> list[object]:
    """A column's values, NaN spelled so that it equals itself and floats to 12 significant digits (an aggregate
    over parallel partitions adds in another order than one over a single partition)."""
    return ["NaN" if isinstance(v, float) and math.isnan(v) else _digits(v) for v in column.to_pylist()]


def _digits(value: object) -> object:
    return float(f"{value:.12g}") if isinstance(value, float) else value


@pytest.mark.parametrize("batch", BATCHES, ids=[f"{b[0].name}..{b[-1].name}" for b in BATCHES])
def test_functions_mean_what_datafusion_means(corpus_http: httpx.Client, batch: list[Case]) -> None:
    sql = _select(batch)
    served, plain = post_arrow(corpus_http, sql), _plain(sql)
    assert isinstance(plain, pa.Table), plain
    if isinstance(served, str):
        failing = [c.name for c in batch if isinstance(post_arrow(corpus_http, c.sql), str)]
        pytest.fail(f"the server failed on {failing}: {served}")
    for i, case in enumerate(batch):
        assert served.schema.field(i).type == plain.schema.field(i).type, case.name
        if case.deterministic:
            assert _values(served.column(i)) == _values(plain.column(i)), case.name


@pytest.mark.parametrize("case", SINGLES, ids=[c.name for c in SINGLES])
def test_function_fails_or_answers_as_datafusion_does(corpus_http: httpx.Client, case: Case) -> None:
    served, plain = post_arrow(corpus_http, case.sql), _plain(case.sql)
    if isinstance(plain, str):
        assert isinstance(served, str), f"only plain DataFusion failed: {plain}"
        return
    assert isinstance(served, pa.Table), f"only the server failed: {served}"
    assert served.schema.types == plain.schema.types
    assert _values(served.column(0)) == _values(plain.column(0))


def test_corpus_is_large_and_mostly_runnable() -> None:
    """A corpus where most queries fail both ways proves nothing: most must run."""
    runs = sum(c.runs for c in FUNCTIONS)
    assert len(FUNCTIONS) >= 250
    assert runs >= 0.95 * len(FUNCTIONS), f"{runs} of {len(FUNCTIONS)} functions run"
    assert all(c.runs for c in OPERATORS)
