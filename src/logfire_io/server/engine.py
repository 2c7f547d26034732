"""Run one Logfire query on DataFusion: the time window, the lock-down, the row limit.

This module runs inside a worker process (see :mod:`logfire_io.server.workers`): DataFusion cannot cancel a
running query from another thread, so a query past its deadline is stopped by killing its process. The tables
are Arrow IPC files memory-mapped by every worker, so they are shared, not copied, and sorted by their time
column, so that the ``min_timestamp``/``max_timestamp`` window is a zero-copy slice found by binary search.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import DataFrame, RuntimeEnvBuilder, SessionConfig, SessionContext, SQLOptions, col, lit

from logfire_io.schema import TABLE_SCHEMAS, TIME_COLUMNS
from logfire_io.server.dialect import rewrite
from logfire_io.server.store import live_segments, read_segment
from logfire_io.server.udfs import register_udfs

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator

__all__ = ["Bounds", "Engine", "QueryError", "QuerySpec", "balanced"]

Bounds = Literal["[)", "[]", "(]", "()"]
"""How ``min_timestamp``/``max_timestamp`` bound the time column: ``[`` inclusive, ``(`` exclusive."""

_rewritten = functools.lru_cache(maxsize=1024)(rewrite)
"""The dialect rewrite is pure and costs a sqlglot parse (about 1 ms): dashboards and retries repeat their SQL."""

_PARTITIONS = 2
"""Partitions each table is registered in, and DataFusion's ``target_partitions`` (workers also run side by side)."""

_LOCKED = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)


class QueryError(Exception):
    """Raised when a query fails to plan or run; the message is safe to show the client."""


@dataclass(frozen=True)
class QuerySpec:
    """One validated query request, as the worker receives it."""

    sql: str
    limit: int
    min_timestamp: int | None = None
    """Microseconds since the epoch, UTC."""
    max_timestamp: int | None = None
    timezone: str = "UTC"
    environments: tuple[str, ...] | None = None
    explain: bool = False
    bounds: Bounds = "[)"
    batch_rows: int = 8192


@dataclass
class _Table:
    data: pa.Table
    times: np.ndarray = field(repr=False)


def balanced(batches: list[pa.RecordBatch], count: int) -> list[list[pa.RecordBatch]]:
    """``batches`` in order, cut into at most ``count`` partitions of equal rows (the last may hold fewer).

    DataFusion scans each partition on its own core. Ingested segments range from 512 rows to hundreds of
    thousands, so cutting by batch count gave one core about 80 % of the rows, and a query took as long as that
    core did. A batch that straddles a cut is sliced there, which copies nothing.
    """
    share = -(-sum(batch.num_rows for batch in batches) // count)
    partitions: list[list[pa.RecordBatch]] = []
    room = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            if room == 0:
                partitions.append([])
                room = share
            take = min(room, batch.num_rows - offset)
            partitions[-1].append(batch.slice(offset, take))
            offset += take
            room -= take
    return partitions


def _sorted_piece(data: pa.Table, name: str) -> _Table:
    """A table sorted by its time column, with that column as int64 microseconds for binary search."""
    times = data.column(TIME_COLUMNS[name]).cast(pa.int64()).fill_null(np.iinfo(np.int64).min)
    return _Table(data, times.to_numpy())


class Engine:
    """The tables of one server, and how to answer a query over them.

    Parameters
    ----------
    paths
        Table name (``records_all``, ``metrics``) to an Arrow IPC file sorted by the table's time column, or to
        a directory of such segments that grows while the server runs (see :meth:`refresh`).
    memory_limit
        Bytes DataFusion may use for its operators before a query fails with a resources error.
    """

    def __init__(self, paths: dict[str, str | os.PathLike[str]], *, memory_limit: int) -> None:
        self._tables: dict[str, list[_Table]] = {}
        self._directories: dict[str, Path] = {}
        self._mapped: dict[tuple[str, int, int], _Table] = {}
        for name, path in paths.items():
            if Path(path).is_dir():
                self._directories[name] = Path(path)
                self._tables[name] = []
            else:
                self._tables[name] = [_sorted_piece(read_segment(Path(path)), name)]
        self._memory_limit = memory_limit
        self._ctx: SessionContext | None = None  # created on first use: after a fork, never before
        self._settings: tuple[str, int] | None = None
        self._windows: dict[str, tuple[object, ...]] = {}
        self._generations: dict[str, tuple[tuple[str, int, int], ...]] = {}

    def refresh(self) -> None:
        """See the segments appended or merged since the last query: a directory listing, and a map per new one.

        Tables given as a directory of segments (see :mod:`logfire_io.server.store`) are read as separate sorted
        pieces, so new data never re-sorts or copies what is already mapped.
        """
        for name, directory in self._directories.items():
            for _ in range(10):  # a segment merged away between the listing and the map: list again
                try:
                    keys = [self._key(path) for path in live_segments(directory)]
                    self._tables[name] = [self._piece(key, name) for key in keys]
                    self._generations[name] = tuple(keys)
                    break
                except FileNotFoundError:
                    continue
        live = {id(piece) for pieces in self._tables.values() for piece in pieces}
        self._mapped = {key: piece for key, piece in self._mapped.items() if id(piece) in live}

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        status = path.stat()
        return str(path), status.st_ino, status.st_mtime_ns

    def _piece(self, key: tuple[str, int, int], name: str) -> _Table:
        if key not in self._mapped:
            self._mapped[key] = _sorted_piece(read_segment(Path(key[0])), name)
        return self._mapped[key]

    def _window(self, name: str, spec: QuerySpec) -> list[list[pa.RecordBatch]]:
        batches: list[pa.RecordBatch] = []
        for piece in self._tables[name]:
            # The pieces' own chunks (64 Ki rows), not batch_rows: each batch costs a registration through the
            # FFI per column, which for a million rows in 8 Ki batches took longer than many queries do.
            batches += self._piece_window(piece, spec).to_batches()
        return balanced(batches, _PARTITIONS) or [[pa.RecordBatch.from_pylist([], TABLE_SCHEMAS[name])]]

    @staticmethod
    def _piece_window(table: _Table, spec: QuerySpec) -> pa.Table:
        lo, hi = 0, len(table.times)
        if spec.min_timestamp is not None:
            lo = int(np.searchsorted(table.times, spec.min_timestamp, "left" if spec.bounds[0] == "[" else "right"))
        if spec.max_timestamp is not None:
            hi = int(np.searchsorted(table.times, spec.max_timestamp, "right" if spec.bounds[1] == "]" else "left"))
        data = table.data.slice(lo, max(0, hi - lo))
        if spec.environments is not None:
            environment = data.column("deployment_environment")
            wanted = [e for e in spec.environments if e]
            keep = pc.is_in(environment, pa.array(wanted, pa.string()))
            if "" in spec.environments:
                keep = pc.or_(pc.fill_null(keep, False), pc.is_null(environment))
            data = data.filter(pc.fill_null(keep, False))
        return data

    def _new_context(self) -> SessionContext:
        config = (
            SessionConfig()
            .with_target_partitions(_PARTITIONS)
            .with_information_schema(False)
            .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
            .set("datafusion.optimizer.expand_views_at_output", "true")
        )
        runtime = RuntimeEnvBuilder().with_fair_spill_pool(self._memory_limit).with_disk_manager_disabled()
        ctx = SessionContext(config, runtime)
        register_udfs(ctx)
        return ctx

    def _context(self, spec: QuerySpec) -> SessionContext:
        """The session, set up for ``spec``: its time window over each table, its time zone and batch size.

        One session serves every query of this worker (creating one and registering the UDFs costs more than
        most queries); only what differs per query is replaced. Queries run one at a time, so this is safe.
        """
        if self._ctx is None:
            self._ctx = self._new_context()
        ctx = self._ctx
        settings = (spec.timezone, spec.batch_rows)
        if settings != self._settings:
            zone = spec.timezone.replace("'", "''")
            ctx.sql(f"SET datafusion.execution.time_zone = '{zone}'").collect()
            ctx.sql(f"SET datafusion.execution.batch_size = {int(spec.batch_rows)}").collect()
            self._settings = settings
        sql = spec.sql.lower()
        self.refresh()
        for name in self._tables:
            # A table the SQL cannot name keeps whatever window it had; one whose window is unchanged is kept.
            pieces = self._generations.get(name)  # appended or merged segments change it
            window = (spec.min_timestamp, spec.max_timestamp, spec.bounds, spec.environments, pieces)
            if name.split("_")[0] not in sql or self._windows.get(name) == window:
                continue
            ctx.deregister_table(name)
            ctx.register_record_batches(name, self._window(name, spec))
            self._windows[name] = window
            if name == "records_all":
                ctx.deregister_table("records")
                ctx.register_view("records", ctx.table("records_all").filter(col("kind") != lit("pending_span")))
        return ctx

    def plan(self, spec: QuerySpec) -> tuple[DataFrame, dict[str, str]]:
        """Plan ``spec``: the DataFrame to stream, and the plans when ``explain`` is asked for.

        Raises
        ------
        QueryError
            The SQL does not parse or plan, or tries DDL, DML or a statement.
        """
        if not spec.sql.strip():
            msg = "the SQL query is empty"
            raise QueryError(msg)
        try:
            frame = self._context(spec).sql_with_options(_rewritten(spec.sql), _LOCKED).limit(spec.limit)
            plans = {}
            if spec.explain:
                plans = {
                    "logical_plan": frame.optimized_logical_plan().display_indent(),
                    "physical_plan": frame.execution_plan().display_indent(),
                }
        except Exception as exc:  # DataFusion raises bare Exception/ValueError subclasses
            raise QueryError(_clean(exc)) from exc
        return frame, plans

    def batches(self, frame: DataFrame) -> Iterator[pa.RecordBatch]:
        """Stream the result of a planned query batch by batch; errors while running become QueryError."""
        try:
            for batch in frame.execute_stream():
                yield batch.to_pyarrow()
        except Exception as exc:
            raise QueryError(_clean(exc)) from exc


def _clean(exc: BaseException) -> str:
    """DataFusion's message without the Python exception prefix noise."""
    text = str(exc).strip()
    for prefix in ("DataFusion error: ", "Execution error: "):
        text = text.removeprefix(prefix)
    return text
