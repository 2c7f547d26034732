"""A dry run: what a read will send, and roughly how many rows it will get, without reading any row.

:func:`plan` asks only aggregates (the window's first and last timestamp when a side is open, and the row
histogram the read itself plans from), then lays out the requests the read would send, with the same code the
read uses (:mod:`logfire_io._read`). A read given the same arguments right after, over the same data, sends
exactly the SQL listed in :attr:`ReadPlan.slices`, including the halves of a slice that comes back full (the
plan counts such a slice's rows exactly, so it knows); only a slice that has grown past the cap since can add
requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
from logfire_io._answers import count_problem, first_count_problem
from logfire_io._protocol import MAX_LIMIT
from logfire_io._read import (
    DEFAULT_MAX_CONCURRENCY,
    ReadRequest,
    check_unsliceable,
    closed_window,
    first_sql,
    histogram,
    needs_probe,
    open_client,
    request_table,
    resumed,
    service_window,
    slice_sql,
    tries_whole_first,
    unsplit_sql,
    whole_sql,
)
from logfire_io._slicing import Slice, pack_histogram, plan_slices
from logfire_io._splice import statement_text
from logfire_io._sql import SliceableQuery, analyze

if TYPE_CHECKING:
    from logfire_io._client import LogfireQueryClient

__all__ = ["ReadPlan", "plan"]

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class ReadPlan:
    """What a read will do: whether it is split, the window, the rows expected and every request's SQL.

    Parameters
    ----------
    sliceable
        Whether the query can be split by time; ``reason`` says why not.
    reason
        Why the query cannot be split, or None.
    window
        The window the read covers, ``(low, high)``; open sides of the request closed at the data's first and
        last rows (None when the query cannot be split, or the window holds no row).
    estimated_rows
        Rows the read will return when it fits one request (counted exactly), else the rows of the driving table
        from the histogram (None when the query cannot be split).
    requests
        How many requests the read will send, planning ones included.
    slices
        One row per data request: ``low``, ``high``, ``estimated_rows`` and the exact ``sql`` sent. A slice that
        will come back full (at the cap, so the read fetches its two halves instead) is listed with the cap as its
        rows, followed by its halves.

    Examples
    --------
    >>> import logfire_io
    >>> p = logfire_io.plan("SELECT span_name, count(*) FROM records GROUP BY span_name")
    >>> p.sliceable, p.requests
    (False, 1)
    >>> p.reason
    'it uses an aggregate, whose value depends on every row'
    """

    sliceable: bool
    reason: str | None
    window: tuple[datetime, datetime] | None
    estimated_rows: int | None
    requests: int
    slices: pl.DataFrame

    def __repr__(self) -> str:
        head = f"ReadPlan: {self.requests} request{'s' * (self.requests != 1)}"
        if not self.sliceable:
            head += f", one query that cannot be split ({self.reason})"
        if self.window is not None:
            head += f", window [{self.window[0].isoformat()}, {self.window[1].isoformat()})"
        if self.estimated_rows is not None:
            head += f", about {self.estimated_rows:,} rows"
        with pl.Config(tbl_rows=12, fmt_str_lengths=80, tbl_width_chars=160):
            return f"{head}\n{self.slices!r}"


def _frame(rows: list[tuple[datetime | None, datetime | None, int | None, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "low": pl.Datetime("us", "UTC"),
            "high": pl.Datetime("us", "UTC"),
            "estimated_rows": pl.Int64,
            "sql": pl.String,
        },
        orient="row",
    )


def _estimates(plan: list[Slice], width_us: int, counts: dict[datetime, int]) -> list[int]:
    """Rows per slice, each histogram bucket's rows spread evenly over its width."""
    width = timedelta(microseconds=width_us)
    estimates = []
    for piece in plan:
        total = 0.0
        for start, n in counts.items():
            overlap = min(piece.high, start + width) - max(piece.low, start)
            if overlap > timedelta(0):
                total += n * (overlap / width)
        estimates.append(round(total))
    return estimates


def _count(
    client: LogfireQueryClient,
    request: ReadRequest,
    query: SliceableQuery,
    sql: str,
    low: datetime | None,
    high: datetime | None,
) -> int:
    """The exact number of rows a request of ``sql`` (over ``[low, high)``) would return (an aggregate: no row read)."""
    counting = f"SELECT count(*) AS n FROM (\n{statement_text(sql)}\n) AS __logfire_q"
    hint = service_window(request, query, low, high)
    return request_table(client, request, counting, 1, hint, count_problem).column("n")[0].as_py()


def _upper(piece: Slice, width_us: int, counts: dict[datetime, int]) -> int:
    """At most how many rows ``piece`` holds: the rows of every histogram bucket it touches."""
    width = timedelta(microseconds=width_us)
    return sum(n for start, n in counts.items() if start < piece.high and piece.low < start + width)


def _fetched(
    client: LogfireQueryClient,
    request: ReadRequest,
    query: SliceableQuery,
    planned: list[Slice],
    histogram_: tuple[int, dict[datetime, int]],
) -> list[tuple[Slice, bool]]:
    """Every slice the read fetches, in order, and whether it comes back full (then its halves follow it).

    A slice the histogram bounds below the cap cannot be full; any other is counted exactly, as the read halves
    one whose answer reaches the cap (:func:`~logfire_io._slicing.fetch_slices`).
    """
    fetched: list[tuple[Slice, bool]] = []
    pending = planned[::-1]
    while pending:
        piece = pending.pop()
        halves = piece.halves()
        full = (
            halves is not None
            and _upper(piece, *histogram_) >= MAX_LIMIT
            and _count(client, request, query, slice_sql(query, request, piece), piece.low, piece.high) >= MAX_LIMIT
        )
        fetched.append((piece, full))
        if full and halves is not None:
            pending += halves[::-1]
    return fetched


def _first_answer(
    client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery, kept_sql: str | None
) -> tuple[int, tuple[datetime, datetime, int] | None]:
    """What the read's first request would answer, by one aggregate (no row read).

    Its rows, and for a full answer to ``kept_sql`` the first row's time, the time the read resumes at and the
    rows kept before it.

    Without ``kept_sql`` (a query whose first rows a read cannot keep) only the rows are counted.
    """
    own = (request.min_timestamp, request.max_timestamp)
    if kept_sql is None:
        return _count(client, request, query, whole_sql(query, request), *own), None
    hint = service_window(request, query, *own)
    first = (
        f"SELECT __logfire_t AS t FROM (\n{statement_text(kept_sql)}\n) AS __logfire_q "
        f"ORDER BY __logfire_t LIMIT {MAX_LIMIT}"
    )
    sql = (
        "SELECT count(*) AS n, min(t) AS lo, max(t) AS hi, sum(CASE WHEN t < last THEN 1 ELSE 0 END) AS kept "
        f"FROM (SELECT t, max(t) OVER () AS last FROM (\n{first}\n) AS __logfire_f) AS __logfire_w"
    )
    counts = request_table(client, request, sql, 1, hint, lambda table: first_count_problem(table, *own))
    answer = counts.to_pylist()[0]
    full = answer["n"] >= MAX_LIMIT
    return answer["n"], (answer["lo"], answer["hi"], answer["kept"]) if full else None


def build_plan(client: LogfireQueryClient, request: ReadRequest) -> ReadPlan:
    """The plan of ``request``, asking the service only for aggregates; it mirrors :func:`iter_tables` step by step."""
    query = analyze(request.sql)
    own = (request.min_timestamp, request.max_timestamp)
    if not query.sliceable:
        check_unsliceable(query, request)
        return ReadPlan(False, query.reason, None, None, 1, _frame([(*own, None, unsplit_sql(query, request)[0])]))
    whole = whole_sql(query, request)
    requests = 0
    first: list[tuple[datetime | None, datetime | None, int | None, str]] = []
    if tries_whole_first(request):
        requests += 1
        kept_sql = first_sql(query, request)
        rows, kept = _first_answer(client, request, query, kept_sql)
        if request.limit is not None or rows < MAX_LIMIT:
            rows = min(rows, request.limit or rows)
            low, high = own
            sql = kept_sql or whole
            return ReadPlan(True, None, (low, high) if low and high else None, rows, 1, _frame([(*own, rows, sql)]))
        if kept_sql is not None and kept is not None:
            first_low, resume_at, kept_rows = kept
            first = [(request.min_timestamp or first_low, resume_at, kept_rows, kept_sql)]
            request = resumed(request, resume_at)
    elif needs_probe(query):
        requests += 1
    requests += request.min_timestamp is None or request.max_timestamp is None
    window = closed_window(client, request, query)
    if window is None:
        return ReadPlan(True, None, None, 0, requests + 1, _frame([(*own, 0, whole)]))
    width_us, counts = histogram(client, request, query, window)
    if request.slices is None:
        requests += 1
        pieces = pack_histogram(window.low, window.high, width_us, counts)
    else:
        pieces = plan_slices(window.low, window.high, request.slices)
    fetched = _fetched(client, request, query, pieces, (width_us, counts))
    estimates = _estimates([p for p, _ in fetched], width_us, counts)
    rows = [
        (p.low, p.high, MAX_LIMIT if full else n, slice_sql(query, request, p))
        for (p, full), n in zip(fetched, estimates, strict=True)
    ]
    total = sum(counts.values()) + sum(n for _, _, n, _ in first)
    low = first[0][0] if first else window.low
    return ReadPlan(True, None, (low, window.high), total, requests + len(fetched), _frame([*first, *rows]))


def plan(
    sql: str,
    *,
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    limit: int | None = None,
    slices: int | timedelta | None = None,
    max_concurrency: int | None = None,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
    client: LogfireQueryClient | None = None,
) -> ReadPlan:
    """A dry run of :func:`~logfire_io.read_logfire` with the same arguments: the requests, without the rows.

    Only aggregates are asked (the count of rows when one request may do, the window's first and last timestamps
    when a side is open, and a row histogram), so a plan is cheap whatever the window holds.

    Parameters
    ----------
    sql
        The query, in Logfire's SQL.
    read_token, base_url
        As for :func:`~logfire_io.read_logfire_arrow`: default ``$LOGFIRE_READ_TOKEN``, ``$LOGFIRE_BASE_URL``.
    min_timestamp, max_timestamp, limit, slices
        As for :func:`~logfire_io.read_logfire_arrow`: the plan is the plan of that read.
    max_concurrency, timezone, environment, client
        As for :func:`~logfire_io.read_logfire_arrow`.

    Returns
    -------
    ReadPlan
        ``.sliceable`` and ``.reason``, ``.window``, ``.estimated_rows``, ``.requests``, and ``.slices``: a
        polars DataFrame with ``low``, ``high``, ``estimated_rows`` and the exact ``sql`` of each data request.

    Raises
    ------
    ConfigurationError
        The arguments are invalid, or ask what the read would refuse (``slices=`` on a query that cannot be split).
    LogfireIOError
        A planning request failed, as the read's would.

    Examples
    --------
    >>> import logfire_io
    >>> p = logfire_io.plan("SELECT * FROM records_all")
    >>> p.sliceable, p.requests > 2, p.estimated_rows
    (True, True, 12000)
    >>> p.slices.columns
    ['low', 'high', 'estimated_rows', 'sql']
    >>> table = logfire_io.read_logfire_arrow("SELECT * FROM records_all", json_columns=None)
    >>> table.num_rows
    12000
    """
    request = ReadRequest(
        sql,
        min_timestamp,
        max_timestamp,
        limit,
        slices,
        DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        False,
        timezone,
        environment,
    )
    with open_client(client, read_token, base_url, 1) as active:
        return build_plan(active, request)
