"""Durable table segments on disk: what ingest appends, what compaction merges and what the query workers read.

Layout of a data directory::

    DATA_DIR/logfire-io-store.json                 marks the directory as a store (format version)
    DATA_DIR/records_all/loaded.arrow              the table given at start (synthetic or the user's)
    DATA_DIR/records_all/seg-<first>-<last>.arrow  ingested rows: batches ``first`` to ``last``
    DATA_DIR/metrics/...                           the same for ``metrics``

Every segment is an Arrow IPC *file* sorted by the table's time column, so the workers memory-map it and find a
``min_timestamp``/``max_timestamp`` window by binary search, segment by segment: appending never re-sorts or
copies what is already stored.

Why a batch that was acknowledged survives ``kill -9``: a segment is written to a ``*.tmp`` name, fsynced,
renamed to its final name and the directory fsynced before :meth:`Store.append` returns, and ingest answers 200
only after that. A segment therefore exists under its final name only once it is complete and on disk.

Why compaction never shows a row twice or loses one: batches get consecutive sequence numbers, a merge of the
consecutive segments ``a..b`` is written (as above) under the name ``seg-a-b``, and readers ignore any segment
whose range lies inside another's. The moment the merged file appears, the pieces it replaces stop being read;
a crash between that rename and the deletion of the pieces leaves them covered, and the next start deletes them.

At start, leftover ``*.tmp`` files (half-written segments) are deleted, and a segment that does not open as an
Arrow IPC file of the table's schema is renamed ``*.corrupt`` and never served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from logfire_io.schema import TIME_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LOADED", "Segment", "Store", "live_segments", "read_segment", "sort_by_time"]

LOADED = "loaded.arrow"
"""File name of the table given at start, in each table's directory."""
_SEGMENT = re.compile(r"^seg-(\d{16})-(\d{16})\.arrow$")
_MARKER = "logfire-io-store.json"
_FORMAT = {"format": "logfire-io-store", "version": 1}
_FANIN = 8
"""How many segments of one size tier are merged into one (each row is rewritten about log8(rows) times)."""
_MAX_SEGMENTS = 48
"""Past this many ingested segments per table, the smallest run is merged whatever its tiers."""
_log = logging.getLogger("logfire_io.server")


@dataclass(frozen=True)
class Segment:
    """One stored segment: the range of batches it holds (none for ``loaded.arrow``), its rows and file."""

    first: int
    last: int
    rows: int
    path: Path


def _parse(name: str) -> tuple[int, int] | None:
    match = _SEGMENT.match(name)
    return (int(match[1]), int(match[2])) if match else None


def live_segments(directory: Path) -> list[Path]:
    """The segment files of one table directory that hold live rows: ``loaded.arrow`` first, then by batch.

    A segment whose batch range lies inside another's has been merged into it and is left out.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    ranges = sorted((r, name) for name in names if (r := _parse(name)) is not None)
    live: list[Path] = [directory / LOADED] if LOADED in names else []
    covered_to = -1
    # Sorted by (first, last): a segment covering others comes after the first of them, so walk by first and
    # keep, among segments starting at the same batch, only the widest.
    for index, ((first, last), name) in enumerate(ranges):
        if last <= covered_to:
            continue
        if index + 1 < len(ranges) and ranges[index + 1][0][0] == first:
            continue  # a wider segment starts at the same batch
        live.append(directory / name)
        covered_to = last
    return live


def read_segment(path: Path) -> pa.Table:
    """Memory-map one segment (zero copy); raises ``pa.ArrowInvalid`` or ``OSError`` if it is not a whole file."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def sort_by_time(table: pa.Table, name: str) -> pa.Table:
    """``table`` sorted by its time column, nulls first as the workers' binary search expects (no copy if sorted)."""
    column = table.column(TIME_COLUMNS[name])
    if column.null_count == 0 and table.num_rows > 1:
        values = column.cast(pa.int64()).to_numpy()
        if bool((values[1:] >= values[:-1]).all()):
            return table
    return table.sort_by([(TIME_COLUMNS[name], "ascending", "at_start")])


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's) data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, table: pa.Table) -> None:
    """Write ``table`` as an Arrow IPC file at ``path``: complete and on disk, or not there at all."""
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=64 * 1024)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


class Store:
    """The segments of every table in one data directory, with appends that are durable when they return.

    Parameters
    ----------
    data_dir
        Where to keep the tables; a temporary directory, deleted by :meth:`close`, when None.
    schemas
        Table name to Arrow schema (``records_all``, ``metrics``).
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None, schemas: Mapping[str, pa.Schema]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="logfire-io-") if data_dir is None else None
        self.root = Path(self._tmp.name if self._tmp else data_dir)  # type: ignore[arg-type]
        self._schemas = dict(schemas)
        marker = self.root / _MARKER
        if self.root.exists() and any(self.root.iterdir()) and not marker.exists():
            msg = (
                f"`data_dir` {str(self.root)!r} exists, is not empty and is not a logfire-io store; "
                "give an empty or new directory"
            )
            raise ValueError(msg)
        self.is_new = not marker.exists()
        self._lock = threading.Lock()
        self._segments: dict[str, list[Segment]] = {}
        self._loaded_rows: dict[str, int] = {}
        self._next = 1
        self._writing: set[int] = set()
        self._merging = threading.Lock()
        for name in self._schemas:
            self.directory(name).mkdir(parents=True, exist_ok=True)
            self._segments[name] = self._recover(name)
        if self.is_new:
            _write_json(marker, _FORMAT)
        self._wake = threading.Condition()
        self._closing = False
        self._compactor = threading.Thread(target=self._compact_forever, name="logfire-io-compactor", daemon=True)
        self._compactor.start()

    def directory(self, name: str) -> Path:
        """The directory of one table's segments (what the query workers are given)."""
        return self.root / name

    def _recover(self, name: str) -> list[Segment]:
        """Delete half-written and merged-away segments, set corrupt ones aside, and list the live ones."""
        directory = self.directory(name)
        for leftover in directory.glob("*.tmp"):
            _log.warning("discarding half-written segment %s", leftover)
            leftover.unlink()
        live = set(live_segments(directory))
        for path in directory.glob("seg-*.arrow"):
            if path not in live:
                path.unlink()  # merged into a covering segment before a crash
        segments = []
        self._loaded_rows[name] = 0
        for path in sorted(live):
            try:
                table = read_segment(path)
                if table.schema != self._schemas[name]:
                    msg = f"schema differs from the {name} table's"
                    raise pa.ArrowInvalid(msg)
            except (pa.ArrowInvalid, OSError) as exc:
                _log.warning("segment %s is damaged (%s); set aside as .corrupt and not served", path, exc)
                path.rename(path.with_name(path.name + ".corrupt"))
                continue
            batches = _parse(path.name)
            if batches is None:
                self._loaded_rows[name] = table.num_rows
                continue
            segments.append(Segment(batches[0], batches[1], table.num_rows, path))
            self._next = max(self._next, batches[1] + 1)
        return sorted(segments, key=lambda s: s.first)

    def num_rows(self, name: str) -> int:
        """Rows stored in table ``name``, loaded and ingested."""
        with self._lock:
            return self._loaded_rows[name] + sum(s.rows for s in self._segments[name])

    def put_loaded(self, name: str, table: pa.Table) -> None:
        """Store ``table`` as the loaded part of ``name``, replacing the one stored before."""
        _write_durably(self.directory(name) / LOADED, sort_by_time(table, name))
        with self._lock:
            self._loaded_rows[name] = table.num_rows

    def append(self, name: str, table: pa.Table) -> None:
        """Add ``table``'s rows to ``name`` durably: when this returns, they are on disk and visible to queries."""
        if table.schema != self._schemas[name]:
            msg = f"rows appended to {name} must have its exact schema, got {table.schema}"
            raise ValueError(msg)
        if table.num_rows == 0:
            return
        with self._lock:
            number = self._next
            self._next += 1
            self._writing.add(number)
        path = self.directory(name) / f"seg-{number:016d}-{number:016d}.arrow"
        try:
            _write_durably(path, sort_by_time(table, name))
        finally:
            with self._lock:
                self._writing.discard(number)
                if path.exists():
                    self._segments[name].append(Segment(number, number, table.num_rows, path))
                    self._segments[name].sort(key=lambda s: s.first)
        with self._wake:
            self._wake.notify()

    def _compact_forever(self) -> None:
        while True:
            with self._wake:
                while not self._closing and not any(self._merge_candidate(n) for n in self._schemas):
                    self._wake.wait(timeout=1.0)
                if self._closing:
                    return
            try:
                self.compact()
            except OSError:  # the directory went away under a closing server; nothing acknowledged is lost
                _log.exception("compaction failed")
                return

    def _merge_candidate(self, name: str) -> list[Segment]:
        """The next run of consecutive segments to merge: ``_FANIN`` of one size tier, or the smallest if too many."""
        with self._lock:
            # A merge must not cover a batch still being written: its segment would land inside the merged range.
            below = min(self._writing, default=self._next)
            segments = [s for s in self._segments[name] if s.last < below]
        tiers = [_tier(s.rows) for s in segments]
        for start in range(len(segments) - _FANIN + 1):
            if len(set(tiers[start : start + _FANIN])) == 1:
                return segments[start : start + _FANIN]
        if len(segments) > _MAX_SEGMENTS:
            start = min(range(len(segments) - _FANIN + 1), key=lambda i: sum(s.rows for s in segments[i : i + _FANIN]))
            return segments[start : start + _FANIN]
        return []

    def _merge(self, name: str, run: list[Segment]) -> None:
        merged = pa.concat_tables([read_segment(s.path) for s in run])
        path = self.directory(name) / f"seg-{run[0].first:016d}-{run[-1].last:016d}.arrow"
        # One chunk, so the file holds a few large record batches: sorting pieces leaves one chunk per piece,
        # and queries over hundreds of tiny batches were several times slower than over the same rows loaded.
        _write_durably(path, sort_by_time(merged, name).combine_chunks())
        replaced = {s.path for s in run}
        with self._lock:
            kept = [s for s in self._segments[name] if s.path not in replaced]
            self._segments[name] = sorted(
                [*kept, Segment(run[0].first, run[-1].last, merged.num_rows, path)], key=lambda s: s.first
            )
        for segment in run:
            segment.path.unlink(missing_ok=True)

    def compact(self) -> None:
        """Merge segments until no merge is due (this also runs in the background after appends)."""
        with self._merging:
            for name in self._schemas:
                while run := self._merge_candidate(name):
                    self._merge(name, run)

    def segment_count(self, name: str) -> int:
        """Ingested segments of ``name`` (loaded data not counted)."""
        with self._lock:
            return len(self._segments[name])

    def close(self) -> None:
        """Stop compacting; delete the directory if it was temporary."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._compactor.join(timeout=30)
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._tmp.name, ignore_errors=True)
                self._tmp.cleanup()


def _tier(rows: int) -> int:
    """Size class of a segment: 0 below 4,096 rows, then one more per factor of 8 (``_FANIN``)."""
    return max(0, (rows.bit_length() - 1) // 3 - 3)


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)
