"""The ``logfire-io`` command: ``serve`` a local Logfire, ``query`` (batch export), ``demo``."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

import polars as pl
from logfire_io._exceptions import LogfireIOError
from logfire_io._protocol import scrub

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        msg = f"expected a duration like 30m, 12h or 7d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return timedelta(**{_UNITS[match["unit"]]: float(match["n"])})


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        msg = f"expected an ISO 8601 timestamp like 2026-01-31T12:00:00Z, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logfire-io", description="Get Pydantic Logfire data into dataframes.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a local Logfire-compatible query server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo-rows", type=int, default=100_000, help="synthetic records to serve")
    serve.add_argument("--records", type=Path, help="Parquet file of records to serve instead")
    serve.add_argument("--metrics", type=Path, help="Parquet file of metrics to serve")
    serve.add_argument("--read-token", help="the token clients must send (default: a random one)")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every query answer")
    serve.add_argument("--faults", help="random faults, e.g. '429:0.1,reset:0.05'")
    serve.add_argument("--fault-seed", type=int, help="seed for a reproducible fault schedule")
    serve.add_argument("--bounds", default="[)", choices=["[)", "[]", "(]", "()"], help="time window semantics")
    serve.add_argument("--deadline", type=float, default=30.0, help="seconds a query may run")
    serve.add_argument("--write-token", help="the token OTLP exporters must send (default: a random one)")
    serve.add_argument("--data-dir", type=Path, help="keep every table here, durably, and serve it again on restart")

    query = commands.add_parser("query", help="run a query and export every row, sliced past the row cap")
    query.add_argument("sql")
    since = query.add_mutually_exclusive_group()
    since.add_argument("--since", type=_duration, help="window start relative to now, e.g. 7d")
    since.add_argument("--min-timestamp", type=_timestamp)
    query.add_argument("--max-timestamp", type=_timestamp)
    query.add_argument("--out", type=Path, help="FILE.parquet, .csv, .arrow or .ndjson (default: print a table)")
    query.add_argument("--slices", type=int)
    query.add_argument("--max-concurrency", type=int)
    query.add_argument("--limit", type=int)
    query.add_argument("--read-token", help="default: $LOGFIRE_READ_TOKEN")
    query.add_argument("--base-url", help="default: $LOGFIRE_BASE_URL, then the token's region")
    query.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)

    demo = commands.add_parser("demo", help="start a local server with synthetic data and show what logfire-io does")
    demo.add_argument("--rows", type=int, default=200_000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``logfire-io`` console script."""
    args = _parser().parse_args(argv)
    tokens = [t for t in (getattr(args, "read_token", None), getattr(args, "write_token", None)) if t]
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "query":
            return _query(args)
        return _demo(args)
    except (LogfireIOError, ValueError, FileNotFoundError, ImportError) as exc:
        text = str(exc)
        for token in tokens:
            text = scrub(text, token)
        print(f"logfire-io: error: {text}", file=sys.stderr)
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
        bounds=args.bounds,
        deadline=args.deadline,
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
        print("Press Ctrl-C to stop.", flush=True)

    server.serve_forever(on_ready=announce)
    return 0


class _Sink:
    """Writes result pieces to a file as they arrive, in order; memory holds one piece."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.suffix = path.suffix.lower()
        if self.suffix not in {".parquet", ".csv", ".arrow", ".ndjson"}:
            msg = f"--out must end in .parquet, .csv, .arrow or .ndjson, got {path.name!r}"
            raise ValueError(msg)
        self._writer: Any = None
        self._file: IO[bytes] | None = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self.schema is None:
            self.schema = table.schema
            if self.suffix == ".parquet":
                self._writer = pq.ParquetWriter(self.path, self.schema)
            elif self.suffix == ".arrow":
                self._writer = pa.ipc.new_file(str(self.path), self.schema)
            else:
                self._file = self.path.open("wb")
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

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # type: ignore[attr-defined]
        if self._file is not None:
            self._file.close()


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
    from logfire_io._read import DEFAULT_MAX_CONCURRENCY, ReadRequest, iter_tables, merge, open_client
    from logfire_io._sql import analyze

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
    started = time.monotonic()
    with open_client(None, args.read_token, args.base_url, request.max_concurrency) as client:
        pieces = iter_tables(client, request, owns_client=True)
        if args.out is None:
            frame = pl.from_arrow(merge(list(pieces), analyze(args.sql)), rechunk=False)
            with pl.Config(tbl_rows=20, tbl_cols=12, fmt_str_lengths=40):
                print(frame)
        else:
            sink = _Sink(args.out)
            try:
                for piece in pieces:
                    sink.write(piece)
                if sink.schema is None:
                    msg = "the query returned no schema"
                    raise ValueError(msg)
            finally:
                sink.close()
    stats = request.stats
    print(
        f"{stats.rows:,} rows in {time.monotonic() - started:.2f} s, {stats.requests} requests "
        f"(minimum {stats.minimum_requests})" + (f", written to {args.out}" if args.out else ""),
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
        before = len(server.queries)
        errors = (
            pl.scan_logfire("records", **kwargs)  # type: ignore[attr-defined]
            .filter((pl.col("level") >= 17) & (pl.col("service_name") == "checkout"))
            .select("start_timestamp", "span_name", "exception_type")
            .head(5)
            .collect()
        )
        print(errors)
        for entry in server.queries[before:]:
            print(f"   SQL sent: {entry.sql}")
        print()

        print(f"4. Past the 10,000-row cap: every one of the {server.num_records:,} rows, sliced and in parallel")
        stats = logfire_io.ReadStats()
        started = time.monotonic()
        from logfire_io._read import ReadRequest, read_arrow

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
