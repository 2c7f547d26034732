"""The one planner and fetcher behind every reader: Arrow tables, sliced past the row cap when needed.

``read_logfire`` (polars), ``read_logfire_pandas``, ``read_logfire_arrow`` and ``scan_logfire`` all go through
:func:`iter_tables`; they differ only in how they convert the Arrow result at the edge.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import polars as pl
from logfire_io._answers import (
    first_rows_problem,
    histogram_problem,
    probe_problem,
    stats_problem,
    times,
    to_micros,
)
from logfire_io._client import LogfireQueryClient
from logfire_io._deadline import close_cut_sockets, cut_sockets
from logfire_io._exceptions import ConfigurationError, RowCapError
from logfire_io._json import JSONColumns, decode_json_columns
from logfire_io._protocol import MAX_LIMIT, Query, checked_window, clamped, resolve_read_token
from logfire_io._slicing import (
    HISTOGRAM_BUCKETS,
    Progress,
    ReadStats,
    Slice,
    checked_slices,
    fetch_slices,
    pack_histogram,
    plan_slices,
)
from logfire_io._sql import (
    SliceableQuery,
    analyze,
    bounded,
    first_rows_sql,
    histogram_sql,
    probe_sql,
    stats_sql,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "ReadRequest",
    "check_unsliceable",
    "closed_window",
    "concat",
    "first_sql",
    "histogram",
    "iter_tables",
    "needs_probe",
    "open_client",
    "read_arrow",
    "read_logfire_arrow",
    "request_table",
    "resumed",
    "service_window",
    "slice_sql",
    "tries_whole_first",
    "unsplit_sql",
    "whole_sql",
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
    slices: int | timedelta | tuple[Slice, ...] | None = None
    """A count, a width, None to plan from a histogram, or a plan made beforehand (the Dask reader's partitions)."""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    progress: bool | None = None
    timezone: str | None = None
    environment: str | list[str] | None = None
    stats: ReadStats = field(default_factory=ReadStats, compare=False)
    whole_window: tuple[datetime | None, datetime | None] | None = None
    """The window of the whole read when this request is one part of it (an export's period): every Logfire
    table other than the driving one is bounded to it, so a join finds partners outside the part."""

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str):
            msg = f"`sql` must be a string, got {type(self.sql).__name__}"
            raise TypeError(msg)
        if not self.sql.strip():
            msg = "`sql` must be a non-empty SQL query, e.g. 'SELECT * FROM records'"
            raise ConfigurationError(msg)
        for name in ("sql", "timezone", "environment"):
            value = getattr(self, name)
            for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                if isinstance(text, str) and not text.isascii():
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        msg = f"`{name}` holds a lone surrogate ({text!r}), which is not valid text to send"
                        raise ConfigurationError(msg) from None
        low, high = checked_window(self.min_timestamp, self.max_timestamp)
        object.__setattr__(self, "min_timestamp", low)
        object.__setattr__(self, "max_timestamp", high)
        if self.whole_window is not None:
            object.__setattr__(self, "whole_window", checked_window(*self.whole_window))
        if not (isinstance(self.slices, tuple) and all(isinstance(piece, Slice) for piece in self.slices)):
            object.__setattr__(self, "slices", checked_slices(self.slices))  # a tuple of Slices is a plan as given
        if self.limit is not None and (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, numbers.Integral)
            or not 1 <= self.limit <= _MAX_ROWS
        ):
            msg = (
                f"`limit` must be a positive integer up to {_MAX_ROWS:,} (leave it out for every row), "
                f"got {self.limit!r}"
            )
            raise ConfigurationError(msg)
        object.__setattr__(self, "limit", None if self.limit is None else int(self.limit))
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


def _cut(client: httpx.Client) -> None:
    """Stop an owned client's requests from other threads at once: its sockets are shut down, then it is closed."""
    cut_sockets(client)
    client.close()


def _not_sliceable(query: SliceableQuery) -> str:
    return (
        f"this query cannot be split by time because {query.reason}, so it runs as one request and can return at "
        f"most {MAX_LIMIT:,} rows"
    )


Window = tuple[datetime | None, datetime | None]


def _wider(low: datetime | None, high: datetime | None) -> Window:
    """The ``min_timestamp``/``max_timestamp`` hint for bounds that the SQL itself carries exactly.

    A microsecond wider on each side, so that no boundary semantics of the service can cut a row the SQL keeps.
    """
    return (low and clamped(low - _ONE_US), high and clamped(high + _ONE_US))


def request_table(
    client: LogfireQueryClient,
    request: ReadRequest,
    sql: str,
    limit: int,
    hint: Window,
    check: Callable[[pa.Table], str | None] = lambda _: None,
) -> pa.Table:
    """One request of the read; an answer failing ``check`` (a planning answer) is an UnexpectedResponseError."""
    request.stats.count_request()
    query = Query(sql, *hint, limit, request.timezone, request.environment)
    return client._checked_arrow(query, check)


def _own_window(request: ReadRequest) -> Window:
    """The window of the driving table's rows this request reads."""
    return request.min_timestamp, request.max_timestamp


def _others_window(request: ReadRequest) -> Window:
    """The window every Logfire table but the driving one is bounded to: the whole read's."""
    return request.whole_window or _own_window(request)


def service_window(request: ReadRequest, query: SliceableQuery, low: datetime | None, high: datetime | None) -> Window:
    """The service's window for a request whose SQL bounds the driving table to ``[low, high)``."""
    return _wider(*_others_window(request)) if query.reads_other_tables else _wider(low, high)


def closed_window(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery) -> Slice | None:
    """The finite window to slice: the requested bounds, open sides closed at the data's min/max; None if empty."""
    low, high = _own_window(request)
    if low is not None and high is not None:
        return Slice(low, high) if low < high else None
    sql = stats_sql(query, low, high, _others_window(request))
    hint = service_window(request, query, low, high)
    stats = request_table(client, request, sql, 1, hint, lambda answer: stats_problem(answer, low, high))
    if not stats.column("n")[0].as_py():
        return None
    return Slice(low or times(stats.column("lo"))[0], high or times(stats.column("hi"))[0] + _ONE_US)


def histogram(
    client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery, window: Slice
) -> tuple[int, dict[datetime, int]]:
    """Rows of the driving SELECT per bucket of ``window`` (bucket start -> rows), and the bucket width."""
    total_us = (window.high - window.low) // _ONE_US
    width_us = max(1, -(-total_us // HISTOGRAM_BUCKETS))
    sql = histogram_sql(query, window.low, window.high, width_us, _others_window(request))
    hint = service_window(request, query, window.low, window.high)
    table = request_table(
        client, request, sql, MAX_LIMIT, hint, lambda answer: histogram_problem(answer, window.low, window.high)
    )
    return width_us, dict(zip(times(table.column("b")), table.column("n").to_pylist(), strict=True))


def _plan(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery, window: Slice) -> list[Slice]:
    if request.slices is not None:
        return plan_slices(window.low, window.high, request.slices)
    width_us, counts = histogram(client, request, query, window)
    return pack_histogram(window.low, window.high, width_us, counts)


def _slices_to_read(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery) -> list[Slice] | None:
    """The slices to fetch, in time order; None when the window holds no row.

    ``slices`` given as a tuple of :class:`Slice` is a plan made beforehand (by the Dask reader's driver, one
    partition's share): it is read as given, without asking for the window or a histogram again.
    """
    if isinstance(request.slices, tuple):
        return list(request.slices)
    window = closed_window(client, request, query)
    return None if window is None else _plan(client, request, query, window)


def needs_probe(query: SliceableQuery) -> bool:
    """Whether a split read must learn the result's schema first, to merge by its ORDER BY."""
    return bool(query.order_by) and not query.time_ordered


def tries_whole_first(request: ReadRequest) -> bool:
    """Whether a read first asks for the whole window in one request (it may fit under the cap)."""
    return request.slices is None and (request.limit is None or request.limit <= MAX_LIMIT)


def whole_sql(query: SliceableQuery, request: ReadRequest) -> str:
    """The SQL of the read's whole window in one request (every Logfire table bounded, none split)."""
    return bounded(query, *_own_window(request), _others_window(request))


def first_sql(query: SliceableQuery, request: ReadRequest) -> str | None:
    """The SQL of a first request whose rows are kept if the window needs slicing; None when they could not be."""
    return None if request.limit is not None else first_rows_sql(query, *_own_window(request), _others_window(request))


def split_first(answer: pa.Table) -> tuple[pa.Table, datetime | None]:
    """An answer to :func:`first_sql` without its time column: its complete rows, and where the read resumes.

    An answer under the cap is the whole result (resume at None). A full one is cut before its last row's time:
    rows at that instant may continue past the cap, so they are read again with the rest, from that instant on.
    """
    rows = answer.remove_column(answer.num_columns - 1)
    if answer.num_rows < MAX_LIMIT:
        return rows, None
    instants = to_micros(answer.column(answer.num_columns - 1))  # rows in the last microsecond are read again
    complete = pc.sum(pc.less(instants, instants[-1])).as_py() or 0
    return rows.slice(0, complete), instants[-1].as_py()


def resumed(request: ReadRequest, low: datetime) -> ReadRequest:
    """``request`` from ``low`` on: what is left once the rows before ``low`` are kept."""
    return replace(request, min_timestamp=low, whole_window=_others_window(request))


def slice_sql(query: SliceableQuery, request: ReadRequest, piece: Slice) -> str:
    """The SQL a slice request sends: the driving table bounded to ``piece``, others to the whole window."""
    return bounded(query, piece.low, piece.high, _others_window(request))


def check_unsliceable(query: SliceableQuery, request: ReadRequest) -> None:
    """Refuse, before any request, what a query that cannot be split cannot do."""
    if request.slices is not None or (request.limit or 0) > MAX_LIMIT:
        msg = (
            f"{_not_sliceable(query)}; `slices` and a `limit` above {MAX_LIMIT:,} need a query "
            "that can be split.\n\nHint: aggregate over a narrower window and combine the results, or "
            "select rows and aggregate them locally."
        )
        raise ConfigurationError(msg)


SortKey = tuple[int, bool, bool]
"""A column index of the result, descending, nulls first."""


def _sortable(data_type: pa.DataType) -> bool:
    """Types the merge sorts exactly as DataFusion does (polars imports them, and orders them the same way)."""
    checks = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_boolean,
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_binary,
        pa.types.is_large_binary,
        pa.types.is_date,
        pa.types.is_time,
        pa.types.is_timestamp,
        pa.types.is_duration,
        pa.types.is_decimal128,
    )
    return any(check(data_type) for check in checks) or data_type in (pa.string_view(), pa.binary_view())


def _sort_keys(query: SliceableQuery, schema: pa.Schema) -> list[SortKey]:
    """The ORDER BY as column indices of ``schema``; raises when split results could not be merged by it."""
    keys = []
    for key in query.order_by:
        if key.position is not None:
            indices = [key.position - 1] if key.position <= len(schema) else []
        else:
            indices = [i for i, name in enumerate(schema.names) if name == key.name]
        label = key.name if key.position is None else f"position {key.position}"
        if len(indices) != 1:
            msg = (
                f"this query must be split by time, and its ORDER BY key {label!r} is not exactly one output column "
                f"(columns: {schema.names}), so the slices cannot be merged in order.\n\nHint: alias the column "
                "you order by, or sort after reading."
            )
            raise ConfigurationError(msg)
        field = schema.field(indices[0])
        if not _sortable(field.type):
            msg = (
                f"this query must be split by time, and it orders by {label!r}, a {field.type} column, which the "
                "merge of slices cannot sort.\n\nHint: order by a scalar column, or sort after reading."
            )
            raise ConfigurationError(msg)
        keys.append((indices[0], key.descending, key.nulls_first))
    return keys


def _sorted(table: pa.Table, keys: list[SortKey]) -> pa.Table:
    """``table`` in ORDER BY order, NULLs placed as SQL places them.

    polars sorts like DataFusion except that it ties -0.0 with 0.0, which DataFusion orders (total order): a
    float key is followed by its sign bit.
    """
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    descending, nulls_last = [], []
    for n, (index, desc, nulls_first) in enumerate(keys):
        column = table.column(index)
        columns[f"k{n}"] = column
        descending.append(desc)
        nulls_last.append(not nulls_first)
        if pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False)
            columns[f"s{n}"] = pa.array(~np.signbit(values))
            descending.append(desc)
            nulls_last.append(True)
    frame = pl.from_arrow(pa.table(columns), rechunk=False).with_row_index("__row")  # type: ignore[union-attr]
    order = frame.sort(list(columns), descending=descending, nulls_last=nulls_last, maintain_order=True)
    return table.take(order["__row"].to_arrow())


def _check_names(table: pa.Table) -> pa.Table:
    """Refuse a result with two columns of one name: no frame can hold it, and merging slices needs names."""
    seen = set()
    for name in table.schema.names:
        if name in seen:
            msg = (
                f"the result has more than one column named {name!r} (columns: {table.schema.names}).\n\nHint: give "
                "each column its own name with AS, e.g. instead of `SELECT *` over a join, `SELECT r.*, p.span_name "
                "AS parent_name`."
            )
            raise ConfigurationError(msg)
        seen.add(name)
    return table


def unsplit_sql(query: SliceableQuery, request: ReadRequest) -> tuple[str, Window]:
    """The SQL and service window of a query that is not split.

    The SQL itself carries the window wherever it names a Logfire table, so the service's (unverified) boundary
    semantics cannot change the answer; a query whose tables cannot be bounded relies on them.
    """
    sql = bounded(query, *_own_window(request))
    return sql, _wider(*_own_window(request)) if sql != request.sql else _own_window(request)


def _unsliceable(client: LogfireQueryClient, request: ReadRequest, query: SliceableQuery) -> pa.Table:
    check_unsliceable(query, request)
    sql, hint = unsplit_sql(query, request)
    table = _check_names(request_table(client, request, sql, request.limit or MAX_LIMIT, hint))
    if request.limit is None and table.num_rows >= MAX_LIMIT:
        msg = (
            f"the result hit the {MAX_LIMIT:,}-row cap and rows may be missing: {_not_sliceable(query)}."
            "\n\nHint: narrow `min_timestamp`/`max_timestamp`, aggregate further, or pass `limit=` if the first "
            f"{MAX_LIMIT:,} rows are what you want."
        )
        raise RowCapError(msg)
    request.stats.rows += table.num_rows
    return table


def iter_tables(client: LogfireQueryClient, request: ReadRequest, *, owns_client: bool) -> Iterator[pa.Table]:
    """The result in pieces, in the query's order, ``limit`` applied: one table per slice as slices arrive.

    The first request asks for the whole window; for a plain query (:func:`first_sql`) it asks for the window's
    first rows in time order, so a full answer is not wasted: its rows before its last row's time are yielded,
    and only the rest is planned. A query ordered other than by its time column is merged and sorted once every
    slice has arrived, then comes as one table. When the read stops early (an error, Ctrl-C), in-flight requests
    are cut by closing the client if ``owns_client``; a caller's client is left open and its in-flight requests
    are waited for.

    Raises
    ------
    RowCapError
        A query that cannot be sliced returned exactly the cap, so rows may be missing.
    ConfigurationError
        ``slices=`` was given for a query that cannot be sliced, a split query's ORDER BY cannot be merged, or
        the result has two columns of one name.
    """
    query = analyze(request.sql)
    if not query.sliceable:
        yield _unsliceable(client, request, query)
        return
    whole = whole_sql(query, request)
    whole_hint = service_window(request, query, *_own_window(request))
    first, resume_at = None, None
    if tries_whole_first(request):
        kept_sql = first_sql(query, request)
        if kept_sql is None:
            answer = request_table(client, request, whole, request.limit or MAX_LIMIT, whole_hint)
        else:
            own = _own_window(request)
            check = lambda answer: first_rows_problem(answer, *own)  # noqa: E731
            answer = request_table(client, request, kept_sql, MAX_LIMIT, whole_hint, check)
        if kept_sql is not None:
            answer, resume_at = split_first(answer)
        first = _check_names(answer)
        del answer
        done = request.limit is not None or (resume_at is None and first.num_rows < MAX_LIMIT)
        if done or resume_at is not None:
            request.stats.rows += first.num_rows
            yield first
        if done:
            return
        if resume_at is not None:  # the rows before it are read: plan only the rest
            first, request = None, resumed(request, resume_at)
    sort_keys: list[SortKey] = []
    if needs_probe(query):
        if first is None:
            first = _check_names(request_table(client, request, probe_sql(whole), 1, whole_hint, probe_problem))
        sort_keys = _sort_keys(query, first.schema)
    plan = _slices_to_read(client, request, query)
    if plan is None:
        if resume_at is None:  # nothing yielded yet: an empty answer still has the result's columns
            yield _check_names(request_table(client, request, whole, 1, whole_hint))
        return

    def fetch(piece: Slice) -> pa.Table:
        hint = service_window(request, query, piece.low, piece.high)
        return request_table(client, request, slice_sql(query, request, piece), MAX_LIMIT, hint)

    pieces = fetch_slices(
        plan,
        fetch,
        max_concurrency=request.max_concurrency,
        stats=request.stats,
        progress=Progress(request.progress),
        abort=partial(_cut, client.client) if owns_client else lambda: None,
        release=partial(close_cut_sockets, client.client) if owns_client else lambda: None,
        fail_fast=request.limit is None,
    )
    try:
        if sort_keys:
            assert first is not None
            tables = [_check_names(table) for _, table in pieces]
            merged = pa.concat_tables(tables, promote_options="permissive") if tables else first.slice(0, 0)
            yield _sorted(merged, sort_keys).slice(0, request.limit)
            return
        remaining = request.limit
        for _, table in pieces:
            _check_names(table)
            if remaining is not None:
                table = table.slice(0, remaining)
                remaining -= table.num_rows
            yield table
            if remaining == 0:
                return
    finally:
        pieces.close()


def concat(tables: list[pa.Table]) -> pa.Table:
    """Pieces of one result as one table, without copying."""
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) != 1 else tables[0]


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
    return decode_json_columns(concat(tables), json_columns)


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
