"""The logfire-io command: exports equal the in-memory read; errors are clear and never show the token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

import logfire_io
import polars as pl
from logfire_io._cli import main
from logfire_io.server import LocalLogfire

SQL = "SELECT start_timestamp, span_id, level, tags, attributes FROM records_all"


@pytest.fixture
def env(server: LocalLogfire, monkeypatch: pytest.MonkeyPatch) -> LocalLogfire:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", server.base_url)
    return server


def _expected(server: LocalLogfire) -> pl.DataFrame:
    return logfire_io.read_logfire(SQL, json_columns=None, read_token=server.read_token, base_url=server.base_url).sort(
        "span_id"
    )


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv", ".ndjson"])
def test_export_equals_in_memory_read(
    env: LocalLogfire, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"records{suffix}"
    assert main(["query", SQL, "--out", str(out), "--slices", "5", "--max-concurrency", "3", "--no-progress"]) == 0
    expected = _expected(env)
    if suffix == ".parquet":
        got = pl.read_parquet(out)
    elif suffix == ".arrow":
        got = pl.from_arrow(pa.ipc.open_file(str(out)).read_all())
    elif suffix == ".ndjson":
        got = pl.read_ndjson(out, schema=expected.schema)
    else:
        got = pl.read_csv(out, schema_overrides={"tags": pl.String, "level": pl.Int32}, try_parse_dates=True)
        got = got.with_columns(pl.col("start_timestamp").dt.replace_time_zone("UTC"))
        tags_json = [None if t is None else json.dumps(t, separators=(",", ":")) for t in expected["tags"].to_list()]
        expected = expected.with_columns(pl.Series("tags", tags_json, dtype=pl.String))
    assert got.sort("span_id").equals(expected)
    assert "20,000 rows" in capsys.readouterr().err


def test_prints_a_table_without_out(env: LocalLogfire, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT span_name, count(*) AS n FROM records GROUP BY span_name ORDER BY n DESC"]) == 0
    captured = capsys.readouterr()
    assert "span_name" in captured.out
    assert "shape:" in captured.out


def test_errors_are_clear_and_scrubbed(server: LocalLogfire, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "query",
            f'SELECT "{server.read_token}" FROM records',
            "--read-token",
            server.read_token,
            "--base-url",
            server.base_url,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("logfire-io: error: the query failed (HTTP 400)")
    assert server.read_token not in err


def test_bad_out_suffix(env: LocalLogfire, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT 1 AS x FROM records LIMIT 1", "--out", str(tmp_path / "x.xlsx")]) == 1
    assert ".parquet, .csv, .arrow or .ndjson" in capsys.readouterr().err


def test_serve_prints_url_and_token(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "logfire_io._cli",
            "serve",
            "--port",
            "0",
            "--demo-rows",
            "2000",
            "--read-token",
            "pylf_v1_local_cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            lines.append(process.stdout.readline())  # type: ignore[union-attr]
        text = "".join(lines)
        assert "read token: pylf_v1_local_cli" in text
        base_url = next(line.split()[-1] for line in lines if "base URL" in line)
        table = logfire_io.read_logfire_arrow(
            "SELECT count(*) AS n FROM records_all", read_token="pylf_v1_local_cli", base_url=base_url
        )
        assert table.column("n").to_pylist() == [2000]
        assert base_url.startswith("http://127.0.0.1:")
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--rows", "30000"]) == 0
    out = capsys.readouterr().out
    assert "no row lost or duplicated: 30,000 unique span ids == 30,000 rows" in out
    assert "SQL sent: SELECT" in out
