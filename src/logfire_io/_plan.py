"""A dry run: what a read will send, and roughly how many rows it will get, without reading any row.

:func:`plan` asks only aggregates (the window's first and last timestamp when a side is open, and the row
histogram the read itself plans from), then lays out the requests the read would send, with the same code the
read uses (:mod:`logfire_io._read`). A read given the same arguments right after, over the same data, sends
exactly the SQL listed in :attr:`ReadPlan.slices`; only a slice that has grown past the cap since (and is then
halved) can add requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
from logfire_io._protocol import MAX_LIMIT
from logfire_io._read import (
    DEFAULT_MAX_CONCURRENCY,
    ReadRequest,
    closed_window,
    histogram,
    needs_probe,
    open_client,
    slice_sql,
    tries_whole_first,
)
from logfire_io._slicing import Slice, pack_histogram, plan_slices
from logfire_io._sql import analyze, bounded

if TYPE_CHECKING:
    from logfire_io._client import LogfireQueryClient

__all__ = ["ReadPlan", "plan"]

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class ReadPlan:
    """What a read will do: whether it is split, the window, the rows expected and every request's SQL.

    Attributes
    ----------
    sliceable
        Whether the query can be split by time; ``reason`` says why not.
    window
        The window the read covers, ``(low, high)``; open sides of the request closed at the data's first and
        last rows (None when the query cannot be split, or the window holds no row).
    estimated_rows
        Rows the driving table contributes, from the histogram (None when the query cannot be split).
    requests
        How many requests the read will send, planning ones included.
    slices
        One row per data request: ``low``, ``high``, ``estimated_rows`` and the exact ``sql`` sent.
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


def build_plan(client: LogfireQueryClient, request: ReadRequest) -> ReadPlan:
    """The plan of ``request``, asking the service only for aggregates."""
    query = analyze(request.sql)
    if not query.sliceable:
        return ReadPlan(
            False,
            query.reason,
            None,
            None,
            1,
            _frame([(request.min_timestamp, request.max_timestamp, None, request.sql)]),
        )
    whole = bounded(query, request.min_timestamp, request.max_timestamp)
    window = closed_window(client, request, query)
    if window is None:  # no row: the read's one request (after the window query, when it was not tried first)
        requests = 1 if tries_whole_first(request) else 2
        return ReadPlan(
            True, None, None, 0, requests, _frame([(request.min_timestamp, request.max_timestamp, 0, whole)])
        )
    width_us, counts = histogram(client, request, query, window)
    total = sum(counts.values())
    bounds = (window.low, window.high)
    if tries_whole_first(request) and (request.limit is not None or total < MAX_LIMIT):
        return ReadPlan(
            True, None, bounds, total, 1, _frame([(request.min_timestamp, request.max_timestamp, total, whole)])
        )
    if request.slices is not None:
        pieces = plan_slices(window.low, window.high, request.slices)
    else:
        pieces = pack_histogram(window.low, window.high, width_us, counts)
    estimates = _estimates(pieces, width_us, counts)
    requests = (
        tries_whole_first(request)
        + (request.min_timestamp is None or request.max_timestamp is None)
        + (request.slices is None)
        + (needs_probe(query) and not tries_whole_first(request))
        + len(pieces)
    )
    rows = [(p.low, p.high, n, slice_sql(query, request, p)) for p, n in zip(pieces, estimates, strict=True)]
    return ReadPlan(True, None, bounds, total, requests, _frame(rows))


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

    Only aggregates are asked (the window's first and last timestamps when a side is open, and a row
    histogram), so a plan costs two or three small requests whatever the window holds.

    Parameters
    ----------
    sql, read_token, base_url, min_timestamp, max_timestamp, limit, slices
        As for :func:`~logfire_io.read_logfire_arrow`.
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
        The arguments are invalid, as the read would say.

    Examples
    --------
    >>> import logfire_io
    >>> p = logfire_io.plan("SELECT * FROM records", min_timestamp=since)  # doctest: +SKIP
    >>> p.requests, p.estimated_rows  # doctest: +SKIP
    (14, 104233)
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
