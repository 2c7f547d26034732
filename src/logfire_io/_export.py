"""Partitioned, resumable, incremental exports: one Parquet file per hour or day, and a manifest.

Each period ``[start, end)`` of the window is read with the normal reader (split past the row cap as usual) and
written to a hive-style path (``date=2026-01-31/hour=13/part-0.parquet``) that polars and DuckDB read directly.
A file is written beside its final path and renamed into place once complete; the manifest (``_manifest.json``,
rewritten the same way) records a period only after its file is in place, so a crash can never leave a period
marked complete that is not. ``resume`` fetches only the periods the manifest does not record as final.

Late rows: Logfire shows a row a little after it happens (its ``created_at`` lags its ``start_timestamp``:
batching in the SDK, the network, ingestion). A period that ended less than ``settle`` ago may still gain rows,
so it is written but marked *provisional*, and fetched again by the next run. Choose ``settle`` above the lag
you see (``created_at - start_timestamp`` of recent rows); the default is 10 minutes.

JSON columns are written as text, so that every period has the same schema; decode after reading.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow.parquet as pq

from logfire_io._exceptions import ConfigurationError
from logfire_io._protocol import as_utc, checked_window
from logfire_io._read import DEFAULT_MAX_CONCURRENCY, ReadRequest, concat, iter_tables, open_client
from logfire_io._sql import analyze

if TYPE_CHECKING:
    from collections.abc import Iterator

    from logfire_io._client import LogfireQueryClient

__all__ = ["ExportResult", "export"]

MANIFEST = "_manifest.json"
_PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class ExportResult:
    """What one export run did.

    Parameters
    ----------
    out_dir
        The folder written to.
    written
        Periods fetched and written by this run, as ``(start, rows)``.
    skipped
        Periods already final in the manifest, left as they were.
    provisional
        Periods written by this run that may still gain rows (the next run fetches them again).
    rows
        Rows written by this run.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime, timedelta
    >>> import logfire_io
    >>> since = datetime.now(UTC) - timedelta(hours=3)
    >>> result = logfire_io.export("SELECT * FROM records", tempfile.mkdtemp(), min_timestamp=since)
    >>> len(result.written) in (3, 4), result.skipped, result.rows > 0
    (True, [], True)
    """

    out_dir: Path
    written: list[tuple[datetime, int]]
    skipped: list[datetime]
    provisional: list[datetime]
    rows: int


def _period_start(value: datetime, partition_by: str) -> datetime:
    value = value.astimezone(UTC)
    if partition_by == "day":
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    return value.replace(minute=0, second=0, microsecond=0)


def _relative_path(start: datetime, partition_by: str) -> str:
    hour = f"/hour={start:%H}" if partition_by == "hour" else ""
    return f"date={start:%Y-%m-%d}{hour}/part-0.parquet"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _write_atomically(path: Path, write: Any) -> None:
    """Write through ``write(tmp_path)`` beside ``path``, flush it to disk, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_manifest(
    out_dir: Path, fingerprint_of: dict[str, Any], partition_by: str | None, *, resume: bool
) -> dict[str, Any]:
    """The folder's manifest, or a fresh one; refuses a folder holding something else or another export."""
    path = out_dir / MANIFEST
    fingerprint = hashlib.sha256(json.dumps(fingerprint_of, sort_keys=True).encode()).hexdigest()
    fresh = {
        "version": 1,
        **fingerprint_of,
        "fingerprint": fingerprint,
        "partition_by": partition_by or "hour",
        "periods": {},
    }
    if not path.exists():
        if out_dir.exists() and any(p.is_file() and not p.name.startswith(".") for p in out_dir.rglob("*")):
            msg = f"`out_dir` {str(out_dir)!r} is not empty and holds no export manifest; choose an empty folder"
            raise ConfigurationError(msg)
        return fresh
    if not resume:
        msg = (
            f"{str(out_dir)!r} already holds an export.\n\nHint: pass `resume=True` to fetch only what is "
            "missing or provisional, or choose another folder."
        )
        raise ConfigurationError(msg)
    try:
        manifest = json.loads(path.read_text())
        periods = manifest["periods"]
        assert all({"low", "high", "path", "provisional"} <= set(p) for p in periods.values())
    except (ValueError, KeyError, TypeError, AssertionError):
        msg = f"the export manifest {str(path)!r} is damaged; export again into an empty folder"
        raise ConfigurationError(msg) from None
    if manifest.get("fingerprint") != fingerprint or manifest.get("partition_by") != (
        partition_by or manifest.get("partition_by")
    ):
        msg = (
            f"{str(out_dir)!r} holds an export of another query, environment, time zone or partitioning "
            f"({manifest.get('partition_by')!r}); a resumed export must use the same ones"
        )
        raise ConfigurationError(msg)
    return manifest


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the folder's lock: a second export into it at the same time fails instead of corrupting it."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = f"another export is writing into {str(directory)!r}; wait for it to finish"
            raise ConfigurationError(msg) from None
        yield


def _save_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True)
    _write_atomically(out_dir / MANIFEST, lambda tmp: tmp.write_text(text))


def _window(
    manifest: dict[str, Any], low: datetime | None, high: datetime | None, *, since_last: bool, now: datetime
) -> tuple[datetime, datetime]:
    periods = manifest["periods"].values()
    if since_last:
        if not periods:
            msg = "`since_last` extends an existing export, and this folder holds none yet: give `min_timestamp`"
            raise ConfigurationError(msg)
        low = low or min(datetime.fromisoformat(p["low"]) for p in periods)
        high = high or now
    if low is None:
        if not periods:
            msg = "an export needs `min_timestamp` (`--since` or `--min-timestamp`), or `since_last` on an existing one"
            raise ConfigurationError(msg)
        low = min(datetime.fromisoformat(p["low"]) for p in periods)
    return low, high or now


def export(
    sql: str,
    out_dir: str | os.PathLike[str],
    *,
    partition_by: Literal["hour", "day"] | None = None,
    resume: bool = False,
    since_last: bool = False,
    settle: timedelta = timedelta(minutes=10),
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    max_concurrency: int | None = None,
    progress: bool | None = None,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
    client: LogfireQueryClient | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Export every row of ``sql`` in the window to one Parquet file per period, resumably.

    Parameters
    ----------
    sql
        A query that can be split by time (see the README's "Exactness"): rows, not aggregates.
    out_dir
        An empty (or new) folder, or one holding an earlier export of the same SQL (with ``resume``).
    partition_by
        ``"hour"`` or ``"day"``: periods in UTC; by default the existing export's, else ``"hour"``.
    resume
        Fetch only the periods the manifest does not record as final; required when ``out_dir`` holds an export.
    since_last
        Extend an existing export up to ``max_timestamp`` (default: now); implies ``resume``.
    settle
        Periods ending less than this before ``now`` are written but marked provisional and fetched again next time.
    min_timestamp, max_timestamp
        The window; ``max_timestamp`` defaults to now, ``min_timestamp`` to the manifest's start when resuming.
    now
        The export's notion of the current time (default: the clock), for reproducible runs.
    read_token, base_url, max_concurrency, progress, timezone, environment, client
        As for :func:`~logfire_io.read_logfire_arrow`.

    Returns
    -------
    ExportResult
        The periods written (with rows), skipped and provisional.

    Raises
    ------
    ConfigurationError
        A query that cannot be split, a folder holding something else, a resumed export of another query.
    LogfireIOError
        A period's read failed, as :func:`~logfire_io.read_logfire_arrow` would; the periods written before it
        stay recorded, and ``resume=True`` goes on from there.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime, timedelta
    >>> import polars as pl
    >>> import logfire_io
    >>> out = tempfile.mkdtemp()
    >>> since = datetime.now(UTC) - timedelta(hours=6)
    >>> first = logfire_io.export("SELECT span_id, start_timestamp FROM records", out, min_timestamp=since)
    >>> files = pl.scan_parquet(f"{out}/**/*.parquet", hive_partitioning=True).collect()
    >>> files.height == first.rows, files["span_id"].is_duplicated().any()
    (True, False)
    >>> again = logfire_io.export("SELECT span_id, start_timestamp FROM records", out, since_last=True)
    >>> len(again.skipped) == len(first.written) - len(first.provisional)
    True
    """
    if partition_by is not None and partition_by not in _PERIODS:
        msg = f"`partition_by` must be 'hour' or 'day', got {partition_by!r}"
        raise ConfigurationError(msg)
    query = analyze(sql)
    if not query.sliceable:
        msg = f"an export reads rows period by period, and this query cannot be split by time because {query.reason}"
        raise ConfigurationError(msg)
    concurrency = DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency
    ReadRequest(sql, max_concurrency=concurrency)  # validate the arguments before touching the folder
    directory = Path(out_dir)
    with _locked(directory):
        return _export(
            sql,
            directory,
            partition_by=partition_by,
            resume=resume or since_last,
            since_last=since_last,
            settle=settle,
            read_token=read_token,
            base_url=base_url,
            min_timestamp=min_timestamp,
            max_timestamp=max_timestamp,
            concurrency=concurrency,
            progress=progress,
            timezone=timezone,
            environment=environment,
            client=client,
            now=now,
        )


def _export(
    sql: str,
    directory: Path,
    *,
    partition_by: str | None,
    resume: bool,
    since_last: bool,
    settle: timedelta,
    read_token: str | None,
    base_url: str | None,
    min_timestamp: datetime | None,
    max_timestamp: datetime | None,
    concurrency: int,
    progress: bool | None,
    timezone: str | None,
    environment: str | list[str] | None,
    client: LogfireQueryClient | None,
    now: datetime | None,
) -> ExportResult:
    fingerprint_of = {"sql": sql, "environment": environment, "timezone": timezone}
    manifest = _load_manifest(directory, fingerprint_of, partition_by, resume=resume)
    for stale in directory.glob("**/.*.tmp"):  # left by a run killed mid-write (the lock says none is running)
        stale.unlink(missing_ok=True)
    now = as_utc(now) if now is not None else datetime.now(UTC)
    low, high = checked_window(min_timestamp, max_timestamp)
    low, high = _window(manifest, low, high, since_last=since_last, now=now)
    low, high = checked_window(low, high)
    assert low is not None
    assert high is not None
    written: list[tuple[datetime, int]] = []
    skipped: list[datetime] = []
    provisional: list[datetime] = []
    partition_by = manifest["partition_by"]
    step = _PERIODS[partition_by]
    start = _period_start(low, partition_by)
    with open_client(client, read_token, base_url, concurrency) as active:
        while start < high:
            period_low, period_high = max(start, low), min(start + step, high)
            key = _iso(start)
            done = manifest["periods"].get(key)
            if done is not None:  # never narrow what is kept: fetch the hull of the kept and the asked bounds
                kept_low, kept_high = datetime.fromisoformat(done["low"]), datetime.fromisoformat(done["high"])
                covered = kept_low <= period_low and period_high <= kept_high
                if covered and not done["provisional"] and (directory / done["path"]).exists():
                    skipped.append(start)
                    start += step
                    continue
                period_low, period_high = min(period_low, kept_low), max(period_high, kept_high)
            request = ReadRequest(
                sql,
                period_low,
                period_high,
                max_concurrency=concurrency,
                timezone=timezone,
                environment=environment,
                whole_window=(low, high),  # a joined row in another period is still a partner
            )
            table = concat(list(iter_tables(active, request, owns_client=client is None)))
            clashing = sorted({"date", "hour"} & set(table.column_names))
            if clashing:
                msg = (
                    f"the result has columns named {clashing}, which the hive-style folders (date=.../hour=...) "
                    "would hide when read back.\n\nHint: rename them with AS."
                )
                raise ConfigurationError(msg)
            relative = _relative_path(start, partition_by)
            _write_atomically(directory / relative, lambda tmp, t=table: pq.write_table(t, tmp))
            is_provisional = start + step > now - settle
            manifest["periods"][key] = {
                "low": _iso(period_low),
                "high": _iso(period_high),
                "rows": table.num_rows,
                "path": relative,
                "completed_at": _iso(datetime.now(UTC)),
                "provisional": is_provisional,
            }
            _save_manifest(directory, manifest)
            written.append((start, table.num_rows))
            if is_provisional:
                provisional.append(start)
            if progress or (progress is None and sys.stderr.isatty()):
                note = " (provisional)" if is_provisional else ""
                print(f"logfire-io: {key}: {table.num_rows:,} rows{note}", file=sys.stderr)
            start += step
    return ExportResult(directory, written, skipped, provisional, sum(rows for _, rows in written))
