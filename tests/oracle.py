"""The oracle for exactness: a query run once, unsplit and uncapped, by DataFusion over the window's rows.

Every split read must equal this (or refuse with a clear error before fetching). It shares only the Logfire
dialect shim and UDFs with the local server (the part that is not under test here: a split and an unsplit run
go through it alike); it has no slicing, no bounds, no limit and no HTTP.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionConfig, SessionContext, col, lit

import logfire_io
from logfire_io.server.dialect import rewrite
from logfire_io.server.udfs import register_udfs

if TYPE_CHECKING:
    from logfire_io.server import LocalLogfire


def in_window(table: pa.Table, low: datetime | None, high: datetime | None, column: str) -> pa.Table:
    """The rows of ``table`` with ``low <= column < high`` (None: open side), bounds compared in UTC."""
    keep = pa.array([True] * table.num_rows)
    times = table.column(column)
    if low is not None:
        keep = pc.and_(keep, pc.greater_equal(times, pa.scalar(low.astimezone(UTC), times.type)))
    if high is not None:
        keep = pc.and_(keep, pc.less(times, pa.scalar(high.astimezone(UTC), times.type)))
    return table.filter(keep)


def run_unsplit(records_all: pa.Table, sql: str) -> pa.Table:
    """``sql`` over ``records_all`` (and its ``records`` view) in one plain DataFusion session."""
    config = (
        SessionConfig()
        .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
        .set("datafusion.optimizer.expand_views_at_output", "true")
        .set("datafusion.execution.time_zone", "UTC")
    )
    ctx = SessionContext(config)
    register_udfs(ctx)
    batches = records_all.to_batches() or [pa.RecordBatch.from_pylist([], records_all.schema)]
    ctx.register_record_batches("records_all", [batches])
    ctx.register_view("records", ctx.table("records_all").filter(col("kind") != lit("pending_span")))
    return ctx.sql(rewrite(sql)).to_arrow_table()


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns)), strict=True))


def assert_same_result(
    got: pa.Table, want: pa.Table, order_by: list[str], limit: int | None, *, arrow_types: bool = True
) -> None:
    """``got`` is ``want`` (an ORDER BY's ties in any order); with ``limit``, its first rows by the ORDER BY.

    ``arrow_types=False`` compares values only, for results that went through polars (``string_view``...).
    """
    assert got.schema.names == want.schema.names
    if arrow_types:
        assert got.schema.types == want.schema.types
    got_rows, want_rows = _rows(got), _rows(want)
    if limit is None:
        assert Counter(got_rows) == Counter(want_rows)
    else:
        assert len(got_rows) == min(limit, len(want_rows))
        assert not Counter(got_rows) - Counter(want_rows), "rows that the query does not return"
    if order_by:
        keys = [got.schema.names.index(name) for name in order_by]
        got_keys = [tuple(row[k] for k in keys) for row in got_rows]
        want_keys = [tuple(row[k] for k in keys) for row in want_rows][: len(got_keys)]
        assert got_keys == want_keys, "rows out of ORDER BY order"


def read(srv: LocalLogfire, sql: str, **kwargs: Any) -> pa.Table:
    """``sql`` read from ``srv`` as Arrow, JSON columns kept as text (as the oracle has them)."""
    return logfire_io.read_logfire_arrow(
        sql, read_token=srv.read_token, base_url=srv.base_url, json_columns=None, progress=False, **kwargs
    )


def check(records: pa.Table, srv: LocalLogfire, sql: str, order_by: list[str], **kwargs: Any) -> pa.Table:
    """Read ``sql`` from ``srv`` (serving ``records``) and assert it equals the oracle's answer; return it."""
    got = read(srv, sql, **kwargs)
    want = run_unsplit(
        in_window(records, kwargs.get("min_timestamp"), kwargs.get("max_timestamp"), "start_timestamp"), sql
    )
    assert_same_result(got, want, order_by, kwargs.get("limit"))
    return got
