"""Bytes on the wire for a typical two-field analysis of ``attributes``: field pushdown vs the whole JSON text.

    python benchmarks/pushdown.py --rows 200000 --rounds 3

The analysis: error responses per route (``http.route`` of the rows whose ``http.response.status_code`` is 400
or more). Baseline, what a user does without pushdown: fetch the whole ``attributes`` text
(``read_logfire("SELECT attributes FROM records", json_columns={"attributes": <two-field struct>})``), then filter
and group in polars. Ours: ``scan_logfire("records", json_columns={"attributes": <same struct>})`` with the same
polars expressions, which sends ``attributes ->> 'field'`` for the two fields and the filter as SQL. A third
variant pushes only the projection (no filter). Both sides answer from one LocalLogfire in this process; bytes are
what httpx downloaded (after compression, as sent), summed over every request; rounds are interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bench import _machine, _table

import polars as pl
from logfire_io import LogfireQueryClient
from logfire_io.polars import read_logfire, scan_logfire
from logfire_io.server import LocalLogfire

TWO_FIELDS = pl.Struct({"http.route": pl.String, "http.response.status_code": pl.Int64})
ROUTE = pl.col("attributes").struct.field("http.route")
STATUS = pl.col("attributes").struct.field("http.response.status_code")


def _analysis(frame: pl.LazyFrame, *, filtered: bool) -> pl.LazyFrame:
    if filtered:
        frame = frame.filter(STATUS >= 400)
    return frame.group_by(ROUTE.alias("route")).agg(pl.len().alias("n")).sort("route")


def _variants(base_url: str, token: str) -> dict[str, Any]:
    kwargs = {"read_token": token, "base_url": base_url, "progress": False}

    def baseline(client: LogfireQueryClient) -> pl.DataFrame:
        whole = read_logfire(
            "SELECT attributes FROM records", json_columns={"attributes": TWO_FIELDS}, client=client, **kwargs
        )
        return _analysis(whole.lazy(), filtered=True).collect()

    def pushed(client: LogfireQueryClient, *, filtered: bool = True) -> pl.DataFrame:
        scan = scan_logfire("records", json_columns={"attributes": TWO_FIELDS}, client=client, **kwargs)
        return _analysis(scan, filtered=filtered).collect()

    return {
        "whole attributes text, filter in polars (today)": baseline,
        "two fields + filter pushed (scan_logfire)": pushed,
        "two fields pushed, no filter": lambda client: pushed(client, filtered=False),
    }


def _measure(func: Any, base_url: str, token: str) -> tuple[int, int, float, pl.DataFrame]:
    """(bytes downloaded, requests, seconds, result) of one run on a fresh client."""
    responses: list[Any] = []
    with LogfireQueryClient(read_token=token, base_url=base_url) as client:
        client.client.event_hooks["response"].append(responses.append)
        started = time.perf_counter()
        result = func(client)
        seconds = time.perf_counter() - started
    return sum(r.num_bytes_downloaded for r in responses), len(responses), seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with LocalLogfire(demo_rows=args.rows, seed=7) as srv:
        variants = _variants(srv.base_url, srv.read_token)
        figures: dict[str, list[tuple[int, int, float]]] = {name: [] for name in variants}
        results: dict[str, pl.DataFrame] = {}
        for _ in range(args.rounds):
            for name, func in variants.items():
                size, requests, seconds, result = _measure(func, srv.base_url, srv.read_token)
                figures[name].append((size, requests, seconds))
                results[name] = result
    names = list(variants)
    assert results[names[0]].equals(results[names[1]]), "pushdown changed the answer"
    base = figures[names[0]][0][0]
    rows = [
        [
            name,
            f"{runs[0][0] / 2**20:.2f}",
            f"{runs[0][0] / base:.3f}",
            str(runs[0][1]),
            f"{statistics.median(r[2] for r in runs):.2f}",
        ]
        for name, runs in figures.items()
    ]
    print(f"Command: python benchmarks/pushdown.py --rows {args.rows} --rounds {args.rounds}")
    print(f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()[0]:.2f}; {_machine()}\n")
    print(
        _table(
            f"Error responses per route over {args.rows:,} records",
            ["variant", "MB downloaded", "vs today", "requests", "median s"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
