"""Where a read's peak memory goes: each step of ``read_logfire`` alone, in a fresh process, against one server.

    python benchmarks/memory_breakdown.py --rows 300000

Prints, per variant, the result's size and the process's peak RSS (VmHWM) above what the imports take.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from logfire_io.server import LocalLogfire

MB = 2**20
SQL = "SELECT * FROM records_all"
VARIANTS = {
    "query_arrow(limit=10000), one request": "client",
    "read_logfire_arrow(json_columns=None)": "arrow_text",
    "read_logfire(json_columns=None) (polars)": "polars_text",
    "read_logfire_arrow() (attributes decoded)": "arrow",
    "read_logfire() (polars, attributes decoded)": "polars",
}

_CHILD = """
import json, sys
import logfire_io, polars, pyarrow

def hwm():
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))

variant, base_url, token, sql = sys.argv[1:5]
before = hwm()
kw = dict(base_url=base_url, read_token=token, progress=False)
if variant == "client":
    with logfire_io.LogfireQueryClient(token, base_url=base_url) as client:
        size = client.query_arrow(sql, limit=10_000).nbytes
elif variant.startswith("arrow"):
    size = logfire_io.read_logfire_arrow(sql, json_columns=None if variant == "arrow_text" else "auto", **kw).nbytes
else:
    frame = logfire_io.read_logfire(sql, json_columns=None if variant == "polars_text" else "auto", **kw)
    size = frame.estimated_size()
print(json.dumps({"size": size, "peak": hwm() - before}))
"""


def main() -> None:
    """Run every variant in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="demo records the server holds")
    args = parser.parse_args()
    print(f"python benchmarks/memory_breakdown.py --rows {args.rows}")
    print("| read | result size (MB) | peak above imports (MB) | peak / result |\n|---|---|---|---|")
    with LocalLogfire(demo_rows=args.rows) as server:
        for label, variant in VARIANTS.items():
            argv = [sys.executable, "-c", _CHILD, variant, server.base_url, server.read_token, SQL]
            figures = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
            size, peak = figures["size"] / MB, figures["peak"] / MB
            print(f"| `{label}` | {size:,.0f} | {peak:,.0f} | {peak / size:.2f} |")


if __name__ == "__main__":
    main()
