"""Which queries can be split by time, decided with a SQL parser, and the bounds injected into them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlglot

from logfire_io._sql import analyze, bounded, first_rows_sql, histogram_sql, stats_sql

LOW, HIGH = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT count(*) FROM records", "aggregate"),
        ("SELECT span_name, avg(duration) FROM records GROUP BY span_name", "aggregate"),
        ("SELECT span_name FROM records GROUP BY span_name", "GROUP BY"),
        ("SELECT DISTINCT span_name FROM records", "DISTINCT"),
        ("SELECT span_name, row_number() OVER (ORDER BY start_timestamp) FROM records", "window function"),
        ("SELECT * FROM records LIMIT 10", "LIMIT"),
        ("SELECT * FROM records ORDER BY start_timestamp LIMIT 10", "LIMIT"),
        ("SELECT * FROM records OFFSET 10", "LIMIT/OFFSET"),
        ("SELECT span_name FROM records UNION SELECT metric_name FROM metrics", "UNION"),
        ("SELECT span_name FROM records EXCEPT SELECT span_name FROM records_all", "EXCEPT"),
        ("WITH x AS (SELECT * FROM records) SELECT * FROM x", "WITH"),
        ("SELECT 1", "reads no table"),
        ("SELECT * FROM other_table", "FROM is not"),
        ("SELECT * FROM records ORDER BY attributes->>'x'", "ORDER BY"),
        ("SELEC nonsense", "not a plain SELECT"),
        ("SELECT r.span_id FROM records r RIGHT JOIN records p ON p.span_id = r.parent_span_id", "RIGHT OUTER JOIN"),
        ("SELECT r.span_id FROM records r FULL OUTER JOIN records p ON p.span_id = r.parent_span_id", "FULL OUTER"),
        ("SELECT * FROM (SELECT * FROM records r FULL JOIN metrics m ON true) AS q", "FULL OUTER"),
        ("SELECT span_name AS level FROM records r ORDER BY r.level", "ORDER BY"),
    ],
)
def test_refuses_shapes_whose_answer_changes_when_split(sql: str, reason: str) -> None:
    query = analyze(sql)
    assert not query.sliceable
    assert reason in query.reason  # type: ignore[operator]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM records",
        "SELECT message, attributes->>'http.route' AS route FROM records WHERE level >= 'warn' AND attributes ? 'x'",
        "SELECT * FROM metrics WHERE metric_name = 'cpu'",
        "SELECT p.message, c.message FROM records p JOIN records c ON c.parent_span_id = p.span_id",
        "SELECT * FROM (SELECT span_name, start_timestamp FROM records_all) AS q WHERE span_name LIKE 'GET%'",
        "SELECT span_name, start_timestamp FROM records ORDER BY start_timestamp DESC, span_name",
    ],
)
def test_row_queries_slice_with_exact_bounds(sql: str) -> None:
    query = analyze(sql)
    assert query.sliceable, query.reason
    text = bounded(query, LOW, HIGH)
    time_column = "recorded_timestamp" if "metrics" in sql else "start_timestamp"
    bounds = (
        f"\"{time_column}\" >= '2026-01-01T00:00:00.000000Z'::timestamptz AND "
        f"\"{time_column}\" < '2026-01-02T00:00:00.000000Z'::timestamptz"
    )
    # Spliced, not re-printed: undoing the derived tables gives back the user's text exactly.
    undone = re.sub(rf"\(SELECT \* FROM (\w+) WHERE {re.escape(bounds)}\)( AS \1)?", r"\1", text)
    assert undone == sql
    assert sqlglot.parse_one(text, read="postgres")  # still valid SQL


def test_join_reads_other_tables_over_the_whole_window() -> None:
    assert analyze("SELECT p.message FROM records p JOIN records c ON c.trace_id = p.trace_id").reads_other_tables
    assert not analyze("SELECT message FROM records").reads_other_tables


def test_logfire_spellings_survive_the_rewrite() -> None:
    text = bounded(
        analyze("SELECT * FROM records WHERE array_has(tags, 'x') AND start_timestamp > now() - interval '1 hour'"),
        LOW,
        None,
    )
    assert "array_has(tags, 'x')" in text.lower()
    assert "now()" in text
    assert "ANY" not in text


@pytest.mark.parametrize(
    ("sql", "keys", "time_ordered"),
    [
        ("SELECT * FROM records ORDER BY start_timestamp", [("start_timestamp", None, False, False)], True),
        ("SELECT start_timestamp AS t FROM records ORDER BY t DESC", [("t", None, True, True)], False),
        ("SELECT span_name, duration FROM records ORDER BY 2 NULLS FIRST", [(None, 2, False, True)], False),
        (
            'SELECT "Span" FROM (SELECT span_name AS "Span" FROM records) q ORDER BY "Span"',
            [("Span", None, False, False)],
            False,
        ),
        (
            "SELECT r.duration FROM records r ORDER BY r.duration DESC NULLS LAST",
            [("duration", None, True, False)],
            False,
        ),
    ],
)
def test_order_by_keys_follow_sql_null_placement(sql: str, keys: list[tuple[object, ...]], time_ordered: bool) -> None:
    query = analyze(sql)
    assert query.sliceable, query.reason
    assert [(k.name, k.position, k.descending, k.nulls_first) for k in query.order_by] == keys
    assert query.time_ordered is time_ordered


def test_planning_queries_splice_the_users_from_and_where() -> None:
    query = analyze(
        "SELECT upper(span_name) AS s FROM records r WHERE to_char(start_timestamp, '%H') = '01' ORDER BY s"
    )
    for text in (stats_sql(query, None, None), histogram_sql(query, LOW, HIGH, 1_000_000)):
        assert 'FROM (\nSELECT "r"."start_timestamp" AS __logfire_t FROM ' in text
        assert "r WHERE to_char(start_timestamp, '%H') = '01' \n) AS __logfire_q" in text
        assert "upper" not in text  # the projection and ORDER BY are not needed to count rows


def test_first_rows_sql_appends_the_driving_time_and_orders_by_it_when_unordered() -> None:
    sql = "SELECT span_id FROM records WHERE level > 9 -- note\n;"
    assert first_rows_sql(analyze(sql), None, None) == (
        'SELECT span_id , "records"."start_timestamp" AS __logfire_t FROM records WHERE level > 9 '
        "ORDER BY __logfire_t -- note\n;"
    )
    ordered = "SELECT span_id, start_timestamp AS t FROM records ORDER BY t, span_id"
    assert first_rows_sql(analyze(ordered), None, None) == (
        'SELECT span_id, start_timestamp AS t , "records"."start_timestamp" AS __logfire_t FROM records '
        "ORDER BY t, span_id"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT r.span_id FROM records r JOIN records p ON p.span_id = r.parent_span_id",  # a row per partner
        "SELECT * FROM (SELECT * FROM records) x",  # the driving SELECT is nested
        "SELECT span_id, duration FROM records ORDER BY duration",  # first rows by duration, not by time
        "SELECT span_id, start_timestamp FROM records ORDER BY start_timestamp DESC",
    ],
)
def test_first_rows_are_kept_only_where_that_is_exact(sql: str) -> None:
    assert analyze(sql).sliceable
    assert first_rows_sql(analyze(sql), None, None) is None
