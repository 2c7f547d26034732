"""Checks of the answers to the planning queries (window bounds, histogram, probe) before a read relies on them.

A read plans its slices from these answers; one that is malformed (a missing or mistyped column, a null, a
negative count, a time outside any window) must stop the read with a clear error naming the request, not an
``IndexError``, an ``OverflowError`` or a plan that silently skips rows. Each check returns the problem, or None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from logfire_io._protocol import EARLIEST_BOUND, LATEST_BOUND

__all__ = [
    "count_problem",
    "first_count_problem",
    "first_rows_problem",
    "histogram_problem",
    "probe_problem",
    "stats_problem",
    "times",
    "to_micros",
]

_UTC_US = pa.timestamp("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICKS_PER_US = {"s": 1e-6, "ms": 1e-3, "us": 1, "ns": 1000}


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _columns_problem(table: pa.Table, names: tuple[str, ...], answer: str) -> str | None:
    if tuple(table.column_names) != names:
        return f"the answer to the {answer} has columns {table.column_names}, not {list(names)}"
    return None


def _counts_problem(column: pa.ChunkedArray, answer: str) -> str | None:
    if not pa.types.is_integer(column.type):
        return f"the answer to the {answer} has counts of type {column.type}, not integers"
    if column.null_count or (len(column) and pc.min(column).as_py() < 0):
        return f"the answer to the {answer} has a null or negative count"
    return None


def to_micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A checked timestamp column (see :func:`_times_problem`) in UTC, cut to whole microseconds (as reads bound)."""
    return column.cast(_UTC_US, safe=False)


def times(column: pa.ChunkedArray) -> list[datetime]:
    """A checked timestamp column as UTC datetimes, cut to whole microseconds."""
    return to_micros(column).to_pylist()  # type: ignore[no-any-return]


def _times_problem(column: pa.ChunkedArray, low: datetime, high: datetime, answer: str) -> str | None:
    """Why ``column`` is not non-null timestamps within ``[low, high)``, or None."""
    if not pa.types.is_timestamp(column.type):
        return f"the answer to the {answer} has times of type {column.type}, not timestamps"
    if column.null_count:
        return f"the answer to the {answer} has a null time"
    if len(column):
        ticks = _TICKS_PER_US[column.type.unit]
        earliest, latest = (pc.min_max(column.cast(pa.int64()))[end].as_py() for end in ("min", "max"))
        if not (_micros(low) * ticks <= earliest and latest < _micros(high) * ticks):
            window = f"[{low.isoformat()}, {high.isoformat()})"
            return f"the answer to the {answer} has a time outside the window asked for, {window}"
    return None


def stats_problem(table: pa.Table, low: datetime | None, high: datetime | None) -> str | None:
    """Why an answer to ``stats_sql`` (one row: ``lo``, ``hi``, ``n``) cannot be used, or None."""
    answer = "query for the bounds of the window"
    problem = _columns_problem(table, ("lo", "hi", "n"), answer)
    if problem is None and table.num_rows != 1:
        problem = f"the answer to the {answer} has {table.num_rows} rows, not 1"
    if problem is None:
        problem = _counts_problem(table.column("n"), answer)
    if problem is None and table.column("n")[0].as_py():
        for name in ("lo", "hi"):
            problem = problem or _times_problem(table.column(name), low or EARLIEST_BOUND, high or LATEST_BOUND, answer)
        if problem is None and times(table.column("lo")) > times(table.column("hi")):
            problem = f"the answer to the {answer} has its earliest time after its latest"
    return problem


def histogram_problem(table: pa.Table, low: datetime, high: datetime) -> str | None:
    """Why an answer to ``histogram_sql`` (``b``: bucket start, ``n``: rows) cannot be used, or None."""
    answer = "histogram query"
    problem = _columns_problem(table, ("b", "n"), answer) or _counts_problem(table.column("n"), answer)
    problem = problem or _times_problem(table.column("b"), low, high, answer)
    if problem is None and len(pc.unique(table.column("b"))) != table.num_rows:
        problem = f"the answer to the {answer} counts one bucket twice"
    return problem


def probe_problem(table: pa.Table) -> str | None:
    """Why an answer to ``probe_sql`` (the query's columns, no row) cannot be used, or None."""
    rows = table.num_rows
    return f"the answer to the query for the result's columns has {rows} rows, not 0" if rows else None


def first_rows_problem(table: pa.Table, low: datetime | None, high: datetime | None) -> str | None:
    """Why an answer to ``first_rows_sql`` (the rows, then their time, in time order) cannot be used, or None.

    The read keeps the rows before the last row's time and resumes there, so the time must be a timestamp column,
    last, with no null, inside the window, and in order: otherwise rows would be kept twice or never read.
    """
    answer = "first request (the window's first rows in time order)"
    if not table.num_columns or table.column_names[-1] != "__logfire_t":
        return f"the answer to the {answer} does not end with its time column __logfire_t"
    column = table.column(table.num_columns - 1)
    problem = _times_problem(column, low or EARLIEST_BOUND, high or LATEST_BOUND, answer)
    if problem is None and len(column) > 1:
        ticks = column.cast(pa.int64())
        if not pc.all(pc.less_equal(ticks[:-1], ticks[1:])).as_py():
            problem = f"the answer to the {answer} is not in time order"
    return problem


def count_problem(table: pa.Table) -> str | None:
    """Why a dry run's count of rows (one row: ``n``) cannot be used, or None."""
    answer = "dry run's count of rows"
    problem = _columns_problem(table, ("n",), answer)
    if problem is None and table.num_rows != 1:
        problem = f"the answer to the {answer} has {table.num_rows} rows, not 1"
    return problem or _counts_problem(table.column("n"), answer)


def first_count_problem(table: pa.Table, low: datetime | None, high: datetime | None) -> str | None:
    """Why a dry run's summary of the first request (``n``, ``lo``, ``hi``, ``kept``) cannot be used, or None.

    The window part is checked as the read checks its own bounds (:func:`stats_problem`); ``kept`` is a count
    when there are rows.
    """
    answer = "dry run's summary of the first request"
    problem = _columns_problem(table, ("n", "lo", "hi", "kept"), answer)
    problem = problem or stats_problem(table.select(["lo", "hi", "n"]), low, high)
    if problem is None and table.column("n")[0].as_py():
        problem = _counts_problem(table.column("kept"), answer)
    return problem
