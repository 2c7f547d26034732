"""The ``logfire-io`` command: ``serve`` a local Logfire, ``query`` (batch export), ``demo``."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import pyarrow as pa

import polars as pl
from logfire_io._client import VERSION
from logfire_io._exceptions import ConfigurationError, LogfireIOError
from logfire_io._protocol import EARLIEST_BOUND, scrub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["main"]

_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SUFFIXES = (".parquet", ".csv", ".arrow", ".ndjson")
_GRACE = 1.5
"""Seconds an interrupted export may take to stop cleanly before the process exits regardless."""


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        msg = f"expected a duration like 30m, 12h or 7d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    try:
        duration = timedelta(**{_UNITS[match["unit"]]: float(match["n"])})
        datetime.now(UTC) - duration  # the window must start after the year 1
    except OverflowError:
        msg = f"{text!r} reaches back before the year 1"
        raise argparse.ArgumentTypeError(msg) from None
    return duration


def _since(text: str) -> timedelta:
    """``--since``: a duration whose window starts no earlier than Logfire can query."""
    duration = _duration(text)
    if datetime.now(UTC) - duration < EARLIEST_BOUND:
        msg = f"{text!r} reaches back before {EARLIEST_BOUND:%Y-%m-%d}, the earliest time Logfire can query"
        raise argparse.ArgumentTypeError(msg)
    return duration


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        msg = f"expected an ISO 8601 timestamp like 2026-01-31T12:00:00Z, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_SIZE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[kmg]?)(?:i?b)?$", re.IGNORECASE)


def _size(text: str) -> int:
    """Bytes from ``1048576``, ``512KiB``, ``1MiB``, ``2GB`` (units are powers of 1024)."""
    match = _SIZE.match(text.strip())
    if match is None or float(match["n"]) <= 0:
        msg = f"expected a positive size like 1048576, 512KiB, 1MiB or 2GiB, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(float(match["n"]) * 1024 ** " kmg".index(match["unit"].lower() or " "))


def _whole(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        msg = f"expected {what}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _port(text: str) -> int:
    return _whole(text, 0, 65535, "a port number from 0 to 65535")


def _count(text: str) -> int:
    return _whole(text, 0, sys.maxsize, "a whole number >= 0")


def _positive(text: str) -> int:
    return _whole(text, 1, sys.maxsize, "a whole number >= 1")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logfire-io", description="Get Pydantic Logfire data into dataframes.")
    parser.add_argument("--version", action="version", version=f"logfire-io {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a local Logfire-compatible query server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--demo-rows", type=_count, default=100_000, help="synthetic records to serve (default: %(default)s)"
    )
    serve.add_argument("--records", type=Path, help="Parquet file of records to serve instead of synthetic ones")
    serve.add_argument("--metrics", type=Path, help="Parquet file of metrics to serve")
    serve.add_argument("--read-token", help="the token clients must send (default: a random one, printed)")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="query worker processes, so queries that run at once (default: the CPU count, at least 2)",
    )
    serve.add_argument(
        "--deadline",
        type=float,
        default=30.0,
        help="seconds a query request may take, answer included; longer queries are stopped (default: %(default)s)",
    )
    serve.add_argument(
        "--memory-limit",
        type=_size,
        default="2GiB",
        help="DataFusion operator memory per worker (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_size,
        default="1MiB",
        help="largest request body accepted; larger ones get 413 unread (default: %(default)s)",
    )
    serve.add_argument(
        "--max-result-bytes",
        type=_size,
        default="256MiB",
        help="largest query result; a query over it fails with a clear 400 (default: %(default)s)",
    )
    serve.add_argument(
        "--gzip",
        choices=["auto", "always", "never"],
        default="auto",
        help="compress answers for clients that accept gzip; auto: all but Arrow to loopback (default: %(default)s)",
    )
    serve.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added to every query answer, as a network would"
    )
    serve.add_argument(
        "--faults",
        help="random faults, e.g. '429:0.1,reset:0.05' (kinds: 429 500 502 503 401 reset truncate slow drip)",
    )
    serve.add_argument("--fault-seed", type=int, help="seed for a reproducible fault schedule")
    serve.add_argument(
        "--rate-limit",
        type=float,
        metavar="N",
        help="query requests per second per read token; faster ones get 429 with Retry-After (default: no limit)",
    )
    serve.add_argument(
        "--bounds",
        default="[)",
        choices=["[)", "[]", "(]", "()"],
        metavar="BOUNDS",
        help="min/max_timestamp semantics: one of '[)' '[]' '(]' '()', [ and ] inclusive (default: '[)')",
    )
    serve.add_argument("--write-token", help="the token OTLP exporters must send (default: a random one)")
    serve.add_argument("--data-dir", type=Path, help="keep every table here, durably, and serve it again on restart")

    query = commands.add_parser("query", help="run a query and export every row, sliced past the row cap")
    query.add_argument("sql", metavar="SQL", help="the query, in Logfire's SQL")
    since = query.add_mutually_exclusive_group()
    since.add_argument("--since", type=_since, help="window start relative to now, e.g. 30m, 12h or 7d")
    since.add_argument("--min-timestamp", type=_timestamp, help="window start, ISO 8601 (naive means UTC)")
    query.add_argument("--max-timestamp", type=_timestamp, help="window end (excluded), ISO 8601 (default: open)")
    query.add_argument(
        "--out",
        type=Path,
        help="FILE.parquet, .csv, .arrow or .ndjson, renamed into place only once complete (default: print a table)",
    )
    query.add_argument("--slices", type=_positive, help="split the window into N slices (default: plan from the data)")
    query.add_argument("--max-concurrency", type=_positive, help="requests in flight at once (default: 4)")
    query.add_argument("--limit", type=_positive, help="at most N rows (default: every row)")
    query.add_argument("--read-token", help="default: $LOGFIRE_READ_TOKEN")
    query.add_argument("--base-url", help="default: $LOGFIRE_BASE_URL, then the token's region")
    query.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show rows and slices done on stderr (default: when stderr is a terminal)",
    )
    query.add_argument(
        "--dry-run", action="store_true", help="print the requests the export would send, and read no row"
    )
    query.add_argument(
        "--partition-by",
        choices=["hour", "day"],
        help="with --out DIR: one Parquet file per UTC hour or day, plus a manifest (resumable)",
    )
    query.add_argument("--resume", action="store_true", help="fetch only the periods not yet final in --out DIR")
    query.add_argument("--since-last", action="store_true", help="extend the export in --out DIR up to now")
    query.add_argument(
        "--settle",
        type=_duration,
        default=timedelta(minutes=10),
        help="periods ending less than this ago are provisional and fetched again next time (default: 10m)",
    )

    demo = commands.add_parser("demo", help="start a local server with synthetic data and show what logfire-io does")
    demo.add_argument("--rows", type=int, default=200_000, help="synthetic records to serve (default: 200,000)")
    return parser


_FLAG_OF = {"out_dir": "out"}
"""Python arguments whose flag has another name."""


def _in_flags(message: str, args: argparse.Namespace) -> str:
    """``message`` with the Python arguments it names (`limit`, `read_token=`, `resume=True`) written as flags."""
    dests = set(vars(args)) - {"command"}

    def flag(match: re.Match[str]) -> str:
        name = _FLAG_OF.get(match[1], match[1])
        if name not in dests:
            return match[0]
        return "SQL" if name == "sql" else "--" + name.replace("_", "-")

    return re.sub(r"`(\w+)(?:=True|=)?`", flag, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``logfire-io`` console script."""
    args = _parser().parse_args(argv)
    tokens = [
        t.strip()
        for t in (
            getattr(args, "read_token", None) or os.environ.get("LOGFIRE_READ_TOKEN"),
            getattr(args, "write_token", None),
        )
        if t
    ]
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "query":
            return _query(args)
        return _demo(args)
    except (LogfireIOError, ValueError, OSError, ImportError) as exc:  # OSError: a port in use, a missing file
        text = str(exc)
        for token in tokens:
            text = scrub(text, token)
        print(f"logfire-io: error: {_in_flags(text, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("logfire-io: interrupted", file=sys.stderr)
        return 130


def _serve(args: argparse.Namespace) -> int:
    from logfire_io.server import LocalLogfire

    server = LocalLogfire(
        demo_rows=args.demo_rows,
        records=args.records,
        metrics=args.metrics,
        read_token=args.read_token,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        faults=args.faults,
        fault_seed=args.fault_seed,
        rate_limit=args.rate_limit,
        bounds=args.bounds,
        deadline=args.deadline,
        workers=args.workers,
        memory_limit=args.memory_limit,
        max_body_bytes=args.max_body_bytes,
        max_result_bytes=args.max_result_bytes,
        gzip={"auto": "auto", "always": True, "never": False}[args.gzip],
        write_token=args.write_token,
        data_dir=args.data_dir,
    )

    def announce(running: LocalLogfire) -> None:
        print(f"Local Logfire serving {running.num_records:,} records and {running.num_metrics:,} metrics")
        print(f"  base URL:   {running.base_url}")
        print(f"  read token: {running.read_token}")
        print(f"  write token: {running.write_token}  (OTLP ingest at /v1/traces, /v1/logs, /v1/metrics)")
        print(f"  try: LOGFIRE_BASE_URL={running.base_url} LOGFIRE_READ_TOKEN={running.read_token} \\")
        print("       logfire-io query 'SELECT span_name, count(*) FROM records GROUP BY 1'")
        print(f"  {running.workers} query workers. Press Ctrl-C to stop.", flush=True)

    server.serve_forever(on_ready=announce)
    print("Local Logfire stopped; its temporary tables are removed.", flush=True)
    return 0


def _checked_out(path: Path) -> Path:
    """``--out``, checked before any request: a known suffix, in a folder that exists and can be written."""
    if path.is_dir():
        msg = f"--out {path} is a folder; name a file in it, e.g. {path / 'records.parquet'}"
        raise ConfigurationError(msg)
    if path.suffix.lower() not in _SUFFIXES:
        msg = f"--out must end in {', '.join(_SUFFIXES[:-1])} or {_SUFFIXES[-1]}, got {path.name!r}"
        raise ConfigurationError(msg)
    folder = path.parent
    if not folder.is_dir():
        msg = f"--out {path}: the folder {folder} does not exist\n\nHint: create it first (mkdir -p {folder})."
        raise ConfigurationError(msg)
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = f"--out {path}: the folder {folder} is not writable"
        raise ConfigurationError(msg)
    return path


class _Sink:
    """Writes result pieces as they arrive, in order, to a temporary file beside ``path``; memory holds one piece.

    Only :meth:`commit` puts the file at ``path`` (an atomic rename), so an export that fails or is interrupted
    never leaves a plausible but partial file there.
    """

    def __init__(self, path: Path) -> None:
        self.path = _checked_out(path)
        self.suffix = path.suffix.lower()
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._writer: Any = None
        self._file: IO[bytes] | None = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self.schema is None:
            self.schema = table.schema
            if self.suffix == ".parquet":
                self._writer = pq.ParquetWriter(self.partial, self.schema)
            elif self.suffix == ".arrow":
                self._writer = pa.ipc.new_file(str(self.partial), self.schema)
            else:
                self._file = self.partial.open("wb")
        table = table.cast(self.schema)
        if self.suffix in {".parquet", ".arrow"}:
            self._writer.write_table(table)  # type: ignore[attr-defined]
            return
        frame = pl.from_arrow(table, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        assert self._file is not None
        if self.suffix == ".ndjson":
            frame.write_ndjson(self._file)
        else:
            first = self._file.tell() == 0
            _csv_ready(frame).write_csv(self._file, include_header=first, datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ")

    def _close(self) -> None:
        writer, file, self._writer, self._file = self._writer, self._file, None, None
        if writer is not None:
            writer.close()
        if file is not None:
            file.close()

    def commit(self) -> None:
        """Complete the file and move it to ``path``."""
        if self.schema is None:
            msg = "the query returned no schema"
            raise ValueError(msg)
        self._close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        """Remove the partial file; safe to call from another thread while the export is stopping."""
        try:
            self._close()
        finally:
            self.partial.unlink(missing_ok=True)


@contextmanager
def _stopping_promptly(on_timeout: Callable[[], None]) -> Iterator[None]:
    """Make Ctrl-C stop the program within ``_GRACE`` seconds.

    Ctrl-C raises KeyboardInterrupt as usual, and the export cleans up on its way out. Threads blocked on the
    network only notice once their request ends, which can take as long as the service does; so if the program
    has not ended ``_GRACE`` seconds later, ``on_timeout`` runs and the process exits with status 130 at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    timers: list[threading.Timer] = []

    def give_up() -> None:
        try:
            on_timeout()
        finally:
            os._exit(130)

    def interrupt(signum: int, frame: object) -> None:
        if not timers:
            timers.append(threading.Timer(_GRACE, give_up))
            timers[0].daemon = True
            timers[0].start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for timer in timers:
            timer.cancel()


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns as compact JSON text, as Logfire's own CSV writes them."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.when(pl.col(name).is_not_null())
        .then(pl.struct(pl.col(name).alias("v")).struct.json_encode().str.slice(5).str.head(-1))
        .alias(name)
        for name in nested
    )


def _query(args: argparse.Namespace) -> int:
    from logfire_io._read import DEFAULT_MAX_CONCURRENCY, ReadRequest, concat, iter_tables, open_client

    low = datetime.now(UTC) - args.since if args.since else args.min_timestamp
    request = ReadRequest(
        args.sql,
        low,
        args.max_timestamp,
        args.limit,
        args.slices,
        DEFAULT_MAX_CONCURRENCY if args.max_concurrency is None else args.max_concurrency,
        args.progress,
    )
    if args.partition_by or args.resume or args.since_last:
        return _export(args, low)
    if args.dry_run:
        from logfire_io._plan import build_plan

        with open_client(None, args.read_token, args.base_url, 1) as client:
            print(build_plan(client, request))
        return 0
    sink = _Sink(args.out) if args.out is not None else None
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    reported = threading.Lock()

    def report_interrupt(*, forced: bool = False) -> None:
        if not reported.acquire(blocking=False):
            return
        if sink is not None:
            sink.discard()
        kept = f"; nothing was written to {sink.path}" if sink is not None else ""
        line_open = forced and progress  # the progress line was not ended by the read stopping
        sys.stderr.write(
            ("\n" if line_open else "")
            + f"logfire-io: interrupted after {request.stats.rows:,} rows had been fetched{kept}\n"
        )
        sys.stderr.flush()

    started = time.monotonic()
    written = 0
    try:
        with (
            _stopping_promptly(lambda: report_interrupt(forced=True)),
            open_client(None, args.read_token, args.base_url, request.max_concurrency) as client,
        ):
            pieces = iter_tables(client, request, owns_client=True)
            try:
                if sink is None:
                    frame = pl.from_arrow(concat(list(pieces)), rechunk=False)
                    written = frame.height
                    with pl.Config(tbl_rows=20, tbl_cols=12, fmt_str_lengths=40):
                        print(frame)
                else:
                    for piece in pieces:
                        sink.write(piece)
                        written += piece.num_rows
                    sink.commit()
            finally:
                pieces.close()  # stop the slices now: their progress line ends before any message
                if sink is not None:
                    sink.discard()
    except KeyboardInterrupt:
        report_interrupt()
        return 130
    stats = request.stats
    print(
        f"{written:,} rows in {time.monotonic() - started:.2f} s ({stats.rows:,} fetched), {stats.requests} "
        f"requests (minimum {stats.minimum_requests})" + (f", written to {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 0


def _export(args: argparse.Namespace, low: datetime | None) -> int:
    from logfire_io._export import export

    if args.out is None:
        msg = "--partition-by, --resume and --since-last write a folder: give it with --out DIR"
        raise LogfireIOError(msg)
    refused = [
        flag
        for flag, given in (("--dry-run", args.dry_run), ("--limit", args.limit), ("--slices", args.slices))
        if given
    ]
    if refused:
        msg = f"{', '.join(refused)} cannot be combined with --partition-by, --resume or --since-last exports"
        raise LogfireIOError(msg)
    result = export(
        args.sql,
        args.out,
        partition_by=args.partition_by,
        resume=args.resume,
        since_last=args.since_last,
        settle=args.settle,
        read_token=args.read_token,
        base_url=args.base_url,
        min_timestamp=low,
        max_timestamp=args.max_timestamp,
        max_concurrency=args.max_concurrency,
        progress=args.progress,
    )
    print(
        f"{result.rows:,} rows in {len(result.written)} periods written to {args.out} "
        f"({len(result.skipped)} already final, {len(result.provisional)} provisional)",
        file=sys.stderr,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    import logfire_io
    from logfire_io.server import LocalLogfire

    print(f"Starting a local Logfire with {args.rows:,} synthetic records...", flush=True)
    with LocalLogfire(demo_rows=args.rows) as server:
        kwargs = {"read_token": server.read_token, "base_url": server.base_url}
        print(f"  serving at {server.base_url}\n")

        print("1. The documented client: LogfireQueryClient.query_arrow")
        with logfire_io.LogfireQueryClient(**kwargs) as client:  # type: ignore[arg-type]
            table = client.query_arrow(
                "SELECT service_name, count(*) AS spans, avg(duration) * 1000 AS avg_ms FROM records "
                "WHERE kind = 'span' GROUP BY service_name ORDER BY spans DESC"
            )
        print(pl.from_arrow(table), "\n")

        print("   Logfire's SQL as written: JSON operators anywhere, here inside function calls")
        sql = (
            "SELECT coalesce(attributes->>'http.route', '(no route)') AS route, count(attributes->'http.method') "
            "AS with_method, count(*) AS n FROM records GROUP BY route ORDER BY n DESC LIMIT 5"
        )
        print(f"   {sql}")
        print(pl.read_logfire(sql, **kwargs), "\n")  # type: ignore[attr-defined]

        print("2. pl.read_logfire: JSON attributes decoded into structs, dotted keys kept")
        frame = pl.read_logfire(  # type: ignore[attr-defined]
            "SELECT start_timestamp, span_name, level, attributes FROM records WHERE attributes ? 'http.route'",
            **kwargs,
        )
        routes = frame.group_by(route=pl.col("attributes").struct.field("http.route")).agg(
            requests=pl.len(), errors=(pl.col("level") >= 17).sum()
        )
        print(f"   attributes dtype: {str(frame.schema['attributes'])[:100]}...")
        print(routes.sort("requests", descending=True), "\n")

        print("3. pl.scan_logfire: only the columns and rows the plan needs are requested")
        seen = server.queries[-1] if server.queries else None
        errors = (
            pl.scan_logfire("records", **kwargs)  # type: ignore[attr-defined]
            .filter((pl.col("level") >= 17) & (pl.col("service_name") == "checkout"))
            .select("start_timestamp", "span_name", "exception_type")
            .head(5)
            .collect()
        )
        print(errors)
        log = server.queries
        for entry in log[log.index(seen) + 1 if seen in log else 0 :]:
            print(f"   SQL sent: {entry.sql}")
        print()

        print("4. A dry run first: logfire_io.plan reads no row, and lists every request the read will send")
        print(logfire_io.plan("SELECT * FROM records_all", **kwargs), "\n")  # type: ignore[arg-type]

        print(f"5. Past the 10,000-row cap: every one of the {server.num_records:,} rows, sliced and in parallel")
        from logfire_io._read import ReadRequest, read_arrow
        from logfire_io._slicing import ReadStats

        stats = ReadStats()
        started = time.monotonic()

        request = ReadRequest("SELECT * FROM records_all", max_concurrency=8, progress=False, stats=stats)
        everything = read_arrow(request, client=None, json_columns=None, **kwargs)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        print(
            f"   {everything.num_rows:,} rows in {elapsed:.2f} s, {stats.requests} requests "
            f"(minimum {stats.minimum_requests}), {stats.bisections} full slices split"
        )
        unique = pl.from_arrow(everything.select(["span_id"]))["span_id"].n_unique()  # type: ignore[index]
        print(f"   no row lost or duplicated: {unique:,} unique span ids == {server.num_records:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
