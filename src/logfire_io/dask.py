"""Logfire on Dask: ``read_logfire`` returns a ``dask.dataframe.DataFrame`` that the cluster's workers read.

Needs the ``dask`` extra (``pip install 'logfire-io[dask]'``); ``import logfire_io`` never imports dask.

The driver plans, the workers read (as dask-bigquery does): the driver asks only for the result's schema (a
``LIMIT 0`` probe) and the read's own plan (:func:`logfire_io._plan.build_plan`: the window and the row
histogram the single-machine reader slices by), then groups the planned slices, in time order, into partitions
of about ``partition_rows`` rows. Each partition is read on a worker by the normal reader
(:func:`logfire_io._read.iter_tables`) given exactly its slices, so a slice that comes back full is halved
there, and retries and errors are those of :func:`logfire_io.read_logfire_pandas`.

Every partition has the same dtypes, as Dask requires: the meta comes from the probe's Arrow schema, and each
partition is cast to it. JSON columns therefore stay text unless ``json_columns`` gives their dtypes: the union
of the keys of every row (``json_columns="auto"`` elsewhere) cannot be known without reading every row.

The read token reaches the workers inside the task's arguments, wrapped so that it never appears in task keys,
graph or task reprs, ``repr(ddf)``, the dashboard, exceptions or logs (its ``repr`` is ``<read token>``, and
task names hash it). With ``read_token=None`` it is not sent at all: the driver plans with its own
``$LOGFIRE_READ_TOKEN`` and each worker reads its own ``$LOGFIRE_READ_TOKEN``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx
import pyarrow as pa

from logfire_io._client import LogfireQueryClient
from logfire_io._exceptions import ConfigurationError
from logfire_io._json import decode_json_columns
from logfire_io._optional import optional_import
from logfire_io._plan import ReadPlan, build_plan
from logfire_io._protocol import as_utc, resolve_base_url, resolve_read_token
from logfire_io._read import DEFAULT_MAX_CONCURRENCY, ReadRequest, concat, iter_tables, needs_probe, open_client
from logfire_io._slicing import Slice
from logfire_io._splice import statement_text
from logfire_io._sql import analyze, output_order, probe_sql, quote_identifier
from logfire_io.pandas import _import_pandas, arrow_to_pandas

if TYPE_CHECKING:
    import dask.dataframe as dd

    import pandas as pd
    import polars as pl

__all__ = ["read_logfire"]

_ONE_US = timedelta(microseconds=1)
_DtypeBackend = Literal["pyarrow", "numpy_nullable"]


def _import_dask() -> Any:
    return optional_import("dask.dataframe", needed_by="logfire_io.dask", extra="dask")


class _Token:
    """A read token that hides itself: ``<read token>`` in every repr, a hash in task names; pickles to workers."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<read token>"

    def __dask_tokenize__(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()


class _Limit:
    """Requests in flight at once for one read, shared by every task: a context manager around each request.

    Pickled by name, so that every task of the read (on any worker) finds the same semaphore.
    """

    def __init__(self, name: str, leases: int) -> None:
        self.name, self.leases = name, leases

    def __reduce__(self) -> tuple[type[_Limit], tuple[str, int]]:
        return type(self), (self.name, self.leases)

    def __repr__(self) -> str:
        return f"{type(self).__name__.lstrip('_')}({self.leases})"

    def __dask_tokenize__(self) -> tuple[str, int]:
        return self.name, self.leases

    def prepare(self) -> None:
        """Get ready in the task's own thread, before the slice threads use the limit."""

    def __enter__(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError


class _ProcessLimit(_Limit):
    """For the local schedulers: one semaphore per read, shared by this process's threads."""

    _semaphores: ClassVar[dict[str, threading.BoundedSemaphore]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _semaphore(self) -> threading.BoundedSemaphore:
        with self._lock:
            return self._semaphores.setdefault(self.name, threading.BoundedSemaphore(self.leases))

    def __enter__(self) -> None:
        self._semaphore().acquire()

    def __exit__(self, *exc: object) -> None:
        self._semaphore().release()


class _ClusterLimit(_Limit):
    """Across a distributed cluster: a ``distributed.Semaphore`` that the scheduler holds."""

    def __init__(self, name: str, leases: int) -> None:
        from distributed import Semaphore

        super().__init__(name, leases)
        self._semaphore = Semaphore(max_leases=leases, name=name)

    def prepare(self) -> None:
        """Bind to the scheduler now: the slice threads started later cannot find the worker themselves."""
        self._semaphore.register()

    def __enter__(self) -> None:
        self._semaphore.acquire()

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()


def _limit(name: str, leases: int) -> _Limit:
    """A cluster-wide limit when a ``distributed`` client is active, else a per-process one."""
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return _ProcessLimit(name, leases)
    return _ClusterLimit(name, leases)


class _LimitedClient(LogfireQueryClient):
    """A client whose every query holds a lease of the read's shared limit, retries and their back-off included.

    Holding the lease through a 429's back-off keeps the cluster from filling the pause with other requests.
    """

    def __init__(self, read_token: str, base_url: str, limit: _Limit, max_concurrency: int) -> None:
        connections = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        super().__init__(read_token, base_url=base_url, limits=connections)
        self._limit = limit

    def query_arrow(self, *args: Any, **kwargs: Any) -> pa.Table:
        """See :meth:`LogfireQueryClient.query_arrow`; waits for a lease first."""
        with self._limit:
            return super().query_arrow(*args, **kwargs)


@dataclass(frozen=True)
class _Partition:
    """The planned slices one partition reads, in time order; None: the query as the single reader runs it."""

    slices: tuple[Slice, ...] | None

    @property
    def bounds(self) -> tuple[datetime, datetime] | None:
        return (self.slices[0].low, self.slices[-1].high) if self.slices else None


@dataclass(frozen=True)
class _ReadSpec:
    """Everything a partition needs besides its slices; its repr and task-name hash never show the token."""

    sql: str
    schema: pa.Schema = field(repr=False)
    """The Arrow schema of every partition: the probe's, with JSON columns decoded to the given dtypes."""
    min_timestamp: datetime | None
    max_timestamp: datetime | None
    read_token: _Token | None
    base_url: str
    max_concurrency: int
    limit: _Limit
    json_columns: dict[str, pl.DataType] = field(repr=False)
    dtype_backend: _DtypeBackend
    time_index: str | None
    """The time column that becomes the index (each partition sorted by it), or None."""
    timezone: str | None
    environment: str | list[str] | None

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (
            self.sql,
            self.schema.to_string(),
            self.min_timestamp,
            self.max_timestamp,
            self.read_token,
            self.base_url,
            self.max_concurrency,
            self.limit,
            {name: str(dtype) for name, dtype in self.json_columns.items()},
            self.dtype_backend,
            self.time_index,
            self.timezone,
            self.environment,
        )

    @property
    def columns(self) -> list[str]:
        """The frame's columns: the result's, less the index."""
        return [name for name in self.schema.names if name != self.time_index]

    def projection(self, columns: list[str]) -> tuple[str, list[str]]:
        """The SQL reading ``columns`` (with the index and ORDER BY keys), and the columns it returns.

        The user's text when every column is needed; else a SELECT of the needed columns over it, ordered as
        it is (a query whose ORDER BY cannot be named by output columns is read whole).
        """
        order = output_order(self.sql)
        needed = {*columns, self.time_index, *(key.name for key in order or ())}
        names = [name for name in self.schema.names if name in needed]
        if order is None or len(names) == len(self.schema):
            return self.sql, self.schema.names
        sql = f"SELECT {', '.join(map(quote_identifier, names))} FROM (\n{statement_text(self.sql)}\n) AS q"
        if order:
            sql += " ORDER BY " + ", ".join(
                f"{quote_identifier(key.name or '')} {'DESC' if key.descending else 'ASC'} "
                f"NULLS {'FIRST' if key.nulls_first else 'LAST'}"
                for key in order
            )
        return sql, names

    def conformed(self, table: pa.Table, names: list[str]) -> pa.Table:
        """A partition's Arrow result with JSON columns decoded and cast to the meta's types."""
        if table.column_names != names:
            msg = (
                f"a partition's result has the columns {table.column_names}, not {names} as the query's "
                "schema said when the read was planned.\n\nHint: alias every output column with a unique name."
            )
            raise ConfigurationError(msg)
        table = decode_json_columns(table, {k: v for k, v in self.json_columns.items() if k in table.column_names})
        return table.cast(pa.schema([self.schema.field(name) for name in table.column_names]))

    def frame(self, table: pa.Table, columns: list[str], bounds: tuple[datetime, datetime] | None) -> pd.DataFrame:
        """A conformed table as the partition's pandas frame: ``columns``, indexed by time when asked."""
        pandas = _import_pandas("logfire_io.dask", "dask")
        frame = arrow_to_pandas(table, self.dtype_backend, pandas)
        if self.time_index is None:
            return frame[columns]
        index = pandas.DatetimeIndex(frame[self.time_index].astype("datetime64[us, UTC]"), name=self.time_index)
        if bounds is not None and len(index) and not (bounds[0] <= index.min() and index.max() < bounds[1]):
            msg = (
                f"the column {self.time_index!r} holds times outside its partition [{bounds[0]}, {bounds[1]}), so "
                "it is not the driving table's time column and cannot index the frame.\n\nHint: pass "
                "`time_index=False`, or alias the computed column another name."
            )
            raise ConfigurationError(msg)
        return frame[columns].set_axis(index).sort_index(kind="stable")


def _read_partition(partition: _Partition, spec: _ReadSpec, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one partition on a worker with the normal reader, given exactly its planned slices."""
    columns = spec.columns if columns is None else list(columns)
    sql, names = spec.projection(columns)
    request = ReadRequest(
        sql,
        spec.min_timestamp,
        spec.max_timestamp,
        slices=partition.slices,
        max_concurrency=spec.max_concurrency,
        progress=False,
        timezone=spec.timezone,
        environment=spec.environment,
    )
    spec.limit.prepare()
    token = resolve_read_token(spec.read_token.value if spec.read_token else None)
    with _LimitedClient(token, spec.base_url, spec.limit, spec.max_concurrency) as client:
        tables = list(iter_tables(client, request, owns_client=True))
    if tables:
        table = spec.conformed(concat(tables), names)
    else:
        table = pa.schema([spec.schema.field(name) for name in names]).empty_table()
    return spec.frame(table, columns, partition.bounds)


def _partitions(plan: ReadPlan, partition_rows: int) -> list[_Partition]:
    """The plan's slices, in time order, grouped into runs of about ``partition_rows`` estimated rows."""
    if not plan.sliceable or plan.window is None:
        return [_Partition(None)]
    low, high = plan.window
    groups: list[list[Slice]] = [[]]
    rows = 0
    for start, end, estimate in plan.slices.select("low", "high", "estimated_rows").iter_rows():
        if groups[-1] and rows + estimate > partition_rows:
            groups.append([])
            rows = 0
        # The whole window as one request keeps the request's open sides: close them where the data ends.
        groups[-1].append(Slice(as_utc(start or low), as_utc(end or high)))
        rows += estimate
    return [_Partition(tuple(group)) for group in groups]


def _divisions(partitions: list[_Partition], pandas: Any) -> tuple[Any, ...] | None:
    """Each partition's first time, then the last partition's last microsecond; None when not all are known."""
    bounds = [p.bounds for p in partitions]
    if any(b is None for b in bounds):
        return None
    edges = [b[0] for b in bounds if b] + [bounds[-1][1] - _ONE_US]  # type: ignore[index]
    return tuple(pandas.Timestamp(edge) for edge in edges)


def _checked(
    partition_rows: int, json_columns: Mapping[str, pl.DataType] | None, dtype_backend: str
) -> dict[str, pl.DataType]:
    if isinstance(partition_rows, bool) or not isinstance(partition_rows, int) or partition_rows < 1:
        msg = f"`partition_rows` must be a positive integer, got {partition_rows!r}"
        raise ConfigurationError(msg)
    if dtype_backend not in ("pyarrow", "numpy_nullable"):
        msg = (
            f"`dtype_backend` must be 'pyarrow' or 'numpy_nullable', got {dtype_backend!r}\n\nHint: NumPy dtypes "
            "(None in read_logfire_pandas) change with the data (an integer column with a NULL becomes float), "
            "and Dask needs every partition to have the same dtypes."
        )
        raise ConfigurationError(msg)
    if json_columns is not None and not isinstance(json_columns, Mapping):
        msg = (
            f"`json_columns` must be a dict of column name to polars dtype, or None, got {json_columns!r}\n\nHint: "
            "every partition must have the same dtypes, and the union of the JSON keys of all rows (what 'auto' "
            "infers elsewhere) is not known before reading them; JSON columns stay text unless given dtypes."
        )
        raise ConfigurationError(msg)
    return dict(json_columns or {})


def read_logfire(
    sql: str,
    *,
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    partition_rows: int = 100_000,
    max_concurrency: int | None = None,
    json_columns: Mapping[str, pl.DataType] | None = None,
    dtype_backend: _DtypeBackend = "pyarrow",
    time_index: bool = True,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
) -> dd.DataFrame:
    """Read a Logfire query as a Dask DataFrame: planned here, read by the workers, one partition per run of slices.

    The driver sends two or three small requests (the schema, the window's ends when a side is open, a row
    histogram) and no row. Partitions are runs of the single-machine reader's slices, in time order, of about
    ``partition_rows`` rows; each is read on a worker by the normal reader, so a slice that comes back full is
    halved and fetched again there, and retries and errors are the same. Computed, the frame holds every row
    of the window exactly once, with the dtypes ``read_logfire_pandas(..., json_columns=None)`` gives.

    Parameters
    ----------
    sql
        The query, in Logfire's SQL. A query that cannot be split by time (aggregates, LIMIT...) is one
        partition, and raises :class:`~logfire_io.RowCapError` when computed if it returns the 10,000-row cap.
        An ORDER BY is kept only when it starts with the time column ascending (partitions are in time order);
        others are refused, as partitions cannot be merged in that order.
    read_token
        A project read token. The driver plans with it and it reaches the workers hidden (never in task names,
        reprs, errors or logs). None: the driver uses its ``$LOGFIRE_READ_TOKEN`` and each worker its own.
    base_url
        The Query API root; defaults to ``$LOGFIRE_BASE_URL``, then the token's region (resolved on the driver).
    min_timestamp, max_timestamp
        The window ``[min_timestamp, max_timestamp)``; an open side is closed at the data's first/last row when
        the read is planned, so rows arriving later are not read.
    partition_rows
        About how many rows each partition holds (from the histogram); a partition holds at least one slice
        (up to 9,000 rows).
    max_concurrency
        Requests in flight at once across the whole read (default 4): a ``distributed.Semaphore`` when a
        ``distributed`` client is active, else a semaphore per process. A request that is retried after a 429
        keeps its place while it waits.
    json_columns
        JSON text columns to decode, with their polars dtypes (as in ``scan_logfire``). Other JSON columns
        stay text: decode them per partition (``logfire_io._json``) or with known dtypes here.
    dtype_backend
        ``"pyarrow"`` (``pd.ArrowDtype`` columns) or ``"numpy_nullable"``; both keep the same dtypes in every
        partition whatever the data.
    time_index
        When the query can be split and its result has the driving table's time column under its own name
        (``start_timestamp``, ``recorded_timestamp`` for metrics), that column becomes the index: a
        ``datetime64[us, UTC]`` index, each partition sorted by it (stably), with known ``divisions``, so
        ``ddf.loc[t0:t1]`` reads only the partitions it needs. False keeps it a column (divisions unknown).
    timezone, environment
        As for :func:`logfire_io.read_logfire_arrow`.

    Examples
    --------
    >>> import logfire_io.dask
    >>> from distributed import Client, LocalCluster
    >>> client = Client(LocalCluster(n_workers=4))  # doctest: +SKIP
    >>> ddf = logfire_io.dask.read_logfire(  # doctest: +SKIP
    ...     "SELECT start_timestamp, service_name, duration FROM records", min_timestamp=since
    ... )
    >>> ddf.groupby("service_name").duration.mean().compute()  # doctest: +SKIP
    """
    dd, pandas = _import_dask(), _import_pandas("logfire_io.dask", "dask")
    json_dtypes = _checked(partition_rows, json_columns, dtype_backend)
    request = ReadRequest(
        sql,
        min_timestamp,
        max_timestamp,
        max_concurrency=DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        progress=False,
        timezone=timezone,
        environment=environment,
    )
    query = analyze(sql)
    if query.sliceable and needs_probe(query):
        msg = (
            "logfire_io.dask reads partitions in time order, so it cannot keep an ORDER BY that does not start "
            "with the time column ascending.\n\nHint: drop the ORDER BY and sort the Dask frame "
            "(`ddf.sort_values(...)`), or order by the time column first."
        )
        raise ConfigurationError(msg)
    token = resolve_read_token(read_token)
    url = resolve_base_url(base_url, token)
    probe = ReadRequest(
        probe_sql(sql), request.min_timestamp, request.max_timestamp, timezone=timezone, environment=environment
    )
    with open_client(None, token, url, 1) as client:
        probed = next(iter_tables(client, probe, owns_client=True)).schema
        plan = build_plan(client, request)
    renamed = [name for name in probed.names if name.rpartition(":")[0] in probed.names]
    if renamed or len(set(probed.names)) != len(probed.names):  # the probe's wrapper renames them "name:1"
        msg = (
            f"the result has duplicate column names ({probed.names}), which a Dask frame cannot hold.\n\nHint: "
            "alias the columns (`SELECT r.span_id, p.span_id AS parent_span_id ...`)."
        )
        raise ConfigurationError(msg)
    schema = decode_json_columns(probed.empty_table(), json_dtypes).schema
    indexed = time_index and query.sliceable and query.time_column in schema.names
    partitions = _partitions(plan, partition_rows)
    name = hashlib.sha256(repr((sql, plan.window, url, token, request.max_concurrency)).encode()).hexdigest()[:16]
    spec = _ReadSpec(
        sql,
        schema,
        request.min_timestamp,
        request.max_timestamp,
        _Token(read_token) if read_token else None,
        url,
        request.max_concurrency,
        _limit(f"logfire-io-{name}", request.max_concurrency),
        json_dtypes,
        dtype_backend,
        query.time_column if indexed else None,
        timezone,
        environment,
    )
    meta = spec.frame(schema.empty_table(), spec.columns, None)
    return dd.from_map(
        _read_partition,
        partitions,
        args=[spec],
        meta=meta,
        divisions=_divisions(partitions, pandas) if indexed else None,
        label="read-logfire",
        enforce_metadata=False,
    )
