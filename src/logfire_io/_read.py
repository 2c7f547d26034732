"""The one planner and fetcher behind every reader: Arrow tables, sliced past the row cap when needed.

``read_logfire`` (polars), ``read_logfire_pandas``, ``read_logfire_arrow`` and ``scan_logfire`` all go through
:func:`iter_tables`; they differ only in how they convert the Arrow result at the edge.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from logfire_io._client import LogfireQueryClient
from logfire_io._exceptions import ConfigurationError, RowCapError
from logfire_io._json import JSONColumns, decode_json_columns
from logfire_io._protocol import MAX_LIMIT, checked_window, resolve_read_token
from logfire_io._slicing import HISTOGRAM_BUCKETS, Progress, ReadStats, Slice, fetch_slices, pack_histogram, plan_slices
from logfire_io._sql import SliceableQuery, analyze, bounded, histogram_sql, stats_sql

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "ReadRequest",
    "iter_tables",
    "merge",
    "open_client",
    "read_arrow",
    "read_logfire_arrow",
]

DEFAULT_MAX_CONCURRENCY = 4
"""Requests in flight at once by default: several times faster than one, gentle on a rate-limited service."""
_ONE_US = timedelta(microseconds=1)
_MAX_ROWS = 10**12
"""The largest ``limit`` a reader takes: far past any result, and within Arrow's 64-bit lengths."""


@dataclass(frozen=True)
class ReadRequest:
    """What a reader was asked for, validated."""

    sql: str
    min_timestamp: datetime | None = None
    max_timestamp: datetime | None = None
    limit: int | None = None
    slices: int | timedelta | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    progress: bool | None = None
    timezone: str | None = None
    environment: str | list[str] | None = None
    stats: ReadStats = field(default_factory=ReadStats, compare=False)

    def __post_init__(self) -> None:
        low, high = checked_window(self.min_timestamp, self.max_timestamp)
        object.__setattr__(self, "min_timestamp", low)
        object.__setattr__(self, "max_timestamp", high)
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= _MAX_ROWS
        ):
            msg = f"`limit` must be a positive integer up to {_MAX_ROWS:,}, or None for every row, got {self.limit!r}"
            raise ConfigurationError(msg)
        if (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or not (1 <= self.max_concurrency <= 64)
        ):
            msg = f"`max_concurrency` must be an integer from 1 to 64, got {self.max_concurrency!r}"
            raise ConfigurationError(msg)


@contextmanager
def open_client(
    client: LogfireQueryClient | None, read_token: str | None, base_url: str | None, max_concurrency: int
) -> Iterator[LogfireQueryClient]:
    """The caller's client, or one of our own sized for ``max_concurrency`` and closed afterwards."""
    if client is not None:
        yield client
        return
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    with LogfireQueryClient(resolve_read_token(read_token), base_url=base_url, limits=limits) as owned:
        yield owned


def _not_sliceable(query: SliceableQuery) -> str:
    return (
        f"this query cannot be split by time because {query.reason}, so it runs as one request and can return at "
        f"most {MAX_LIMIT:,} rows"
    )


def _single(client: LogfireQueryClient, request: ReadRequest, sql: str, limit: int, *, hint_wider: bool) -> pa.Table:
    low, high = request.min_timestamp, request.max_timestamp
    if hint_wider:
        low, high = low and low - _ONE_US, high and high + _ONE_US
    request.stats.count_request()
    return client.query_arrow(sql, low, high, limit, timezone=request.timezone, environment=request.environment)


def _window(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery) -> Slice | None:
    """The finite window to slice: the requested bounds, with open sides closed at the data's min/max."""
    low, high = request.min_timestamp, request.max_timestamp
    if low is not None and high is not None:
        return Slice(low, high)
    stats = _single(client, request, stats_sql(query, low, high), 1, hint_wider=True)
    if not stats.column("n")[0].as_py():
        return None
    low = low or stats.column("lo")[0].as_py()
    high = high or stats.column("hi")[0].as_py() + _ONE_US
    return Slice(low, high)


def _plan(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery, window: Slice) -> list[Slice]:
    if request.slices is not None:
        return plan_slices(window.low, window.high, request.slices)
    total_us = (window.high - window.low) // _ONE_US
    width_us = max(1, -(-total_us // HISTOGRAM_BUCKETS))
    histogram = _single(
        client, request, histogram_sql(query, window.low, window.high, width_us), MAX_LIMIT, hint_wider=True
    )
    starts = histogram.column("b").cast(pa.timestamp("us", "UTC")).to_pylist()
    counts = dict(zip(starts, histogram.column("n").to_pylist(), strict=True))
    return pack_histogram(window.low, window.high, width_us, counts)


def iter_tables(client: LogfireQueryClient, request: ReadRequest, *, owns_client: bool) -> Iterator[pa.Table]:
    """The result in time-ordered pieces: one table per slice (or one table when one request suffices).

    When the read stops early (an error, Ctrl-C), in-flight requests are cut by closing the client if
    ``owns_client``; a caller's client is left open and its in-flight requests are waited for.

    Raises
    ------
    RowCapError
        A query that cannot be sliced returned exactly the cap, so rows may be missing.
    ConfigurationError
        ``slices=`` was given for a query that cannot be sliced.
    """
    query = analyze(request.sql)
    if not query.sliceable:
        if request.slices is not None or (request.limit or 0) > MAX_LIMIT:
            msg = (
                f"{_not_sliceable(query)}; `slices` and a `limit` above {MAX_LIMIT:,} need a query "
                "that can be split.\n\nHint: aggregate over a narrower window and combine the results, or "
                "select rows and aggregate them locally."
            )
            raise ConfigurationError(msg)
        table = _single(client, request, request.sql, request.limit or MAX_LIMIT, hint_wider=False)
        if request.limit is None and table.num_rows >= MAX_LIMIT:
            msg = (
                f"the result hit the {MAX_LIMIT:,}-row cap and rows may be missing: {_not_sliceable(query)}."
                "\n\nHint: narrow `min_timestamp`/`max_timestamp`, aggregate further, or pass `limit=` if the first "
                f"{MAX_LIMIT:,} rows are what you want."
            )
            raise RowCapError(msg)
        request.stats.rows += table.num_rows
        yield table
        return
    whole = bounded(query, request.min_timestamp, request.max_timestamp)
    if request.slices is None and (request.limit is None or request.limit <= MAX_LIMIT):
        first = _single(client, request, whole, request.limit or MAX_LIMIT, hint_wider=True)
        if request.limit is not None or first.num_rows < MAX_LIMIT:
            request.stats.rows += first.num_rows
            yield first
            return
    window = _window(client, request, query)
    if window is None:
        yield _single(client, request, whole, 1, hint_wider=True)
        return
    plan = _plan(client, request, query, window)

    def fetch(piece: Slice) -> pa.Table:
        hint = window if query.reads_other_tables else piece
        request.stats.count_request()
        return client.query_arrow(
            bounded(query, piece.low, piece.high),
            hint.low - _ONE_US,
            hint.high + _ONE_US,
            MAX_LIMIT,
            timezone=request.timezone,
            environment=request.environment,
        )

    remaining = request.limit
    pieces = fetch_slices(
        plan,
        fetch,
        max_concurrency=request.max_concurrency,
        stats=request.stats,
        progress=Progress(request.progress),
        abort=client.client.close if owns_client else lambda: None,
    )
    try:
        for _, table in pieces:
            if remaining is not None:
                table = table.slice(0, remaining)
                remaining -= table.num_rows
            yield table
            if remaining == 0:
                return
    finally:
        pieces.close()


def merge(tables: list[pa.Table], query: SliceableQuery) -> pa.Table:
    """Concatenate slice results without copying; re-sort when the query orders rows and was split."""
    merged = pa.concat_tables(tables, promote_options="permissive") if len(tables) != 1 else tables[0]
    if len(tables) > 1 and query.order_by:
        keys = [(name, "descending" if desc else "ascending") for name, desc in query.order_by]
        merged = merged.take(pc.sort_indices(merged, sort_keys=keys))
    return merged


def read_arrow(
    request: ReadRequest,
    *,
    read_token: str | None,
    base_url: str | None,
    client: LogfireQueryClient | None,
    json_columns: JSONColumns,
) -> pa.Table:
    """Read the whole result as one Arrow table, JSON columns decoded."""
    with open_client(client, read_token, base_url, request.max_concurrency) as active:
        tables = list(iter_tables(active, request, owns_client=client is None))
    return decode_json_columns(merge(tables, analyze(request.sql)), json_columns)


def read_logfire_arrow(
    sql: str,
    *,
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    limit: int | None = None,
    slices: int | timedelta | None = None,
    max_concurrency: int | None = None,
    json_columns: JSONColumns = "auto",
    progress: bool | None = None,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
    client: LogfireQueryClient | None = None,
) -> pa.Table:
    """Read a Logfire query into a ``pyarrow.Table``: every row of the window, JSON columns decoded.

    Parameters
    ----------
    {read_parameters}

    Returns
    -------
    pyarrow.Table
        The result; slices are concatenated without copying, and re-sorted when the query has an ORDER BY.

    Raises
    ------
    {reader_raises}

    Examples
    --------
    >>> from logfire_io import read_logfire_arrow
    >>> table = read_logfire_arrow("SELECT span_id FROM records_all")  # more than 10,000 rows: read in slices
    >>> count = read_logfire_arrow("SELECT count(*) AS n FROM records_all").column("n")[0].as_py()
    >>> table.num_rows == count > 10_000
    True
    """
    request = ReadRequest(
        sql,
        min_timestamp,
        max_timestamp,
        limit,
        slices,
        DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        progress,
        timezone,
        environment,
    )
    return read_arrow(request, read_token=read_token, base_url=base_url, client=client, json_columns=json_columns)
