"""The logfire-io command: exports equal the in-memory read; errors are clear and never show the token."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import logfire_io
import polars as pl
from logfire_io._cli import main
from logfire_io.server import LocalLogfire
from tests.conftest import DEMO_END

SQL = "SELECT start_timestamp, span_id, level, tags, attributes FROM records_all"
WINDOW = ["--min-timestamp", "2026-01-01T00:00:00Z", "--max-timestamp", "2026-01-02T00:00:00Z"]


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


def test_13_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"logfire-io {logfire_io.__version__}"


def test_13_every_flag_has_help() -> None:
    from logfire_io._cli import _parser

    parser = _parser()
    (commands,) = (a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in [("", parser), *commands.choices.items()]  # type: ignore[union-attr]
        for action in sub._actions
        if not action.help and action is not commands
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing/folder/x.parquet", "folder {tmp}/missing/folder does not exist"),
        ("x.xlsx", "--out must end in .parquet, .csv, .arrow or .ndjson"),
        ("", "is a folder; name a file in it"),
    ],
)
def test_13_out_is_checked_before_any_request(
    env: LocalLogfire, tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, message: str
) -> None:
    before = len(env.queries)
    assert main(["query", SQL, "--out", str(tmp_path / out) if out else str(tmp_path), "--no-progress"]) == 1
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert len(env.queries) == before


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--limit", str(10**13)], "--limit must be a positive integer up to 1,000,000,000,000"),
        (["--max-concurrency", "65"], "--max-concurrency must be an integer from 1 to 64"),
        ([*WINDOW, "--slices", "200000"], "--slices asks for 200,000 slices"),
        (["--min-timestamp", "2026-01-02", "--max-timestamp", "2026-01-01"], "--min-timestamp (2026-01-02"),
    ],
)
def test_13_messages_name_flags_not_arguments(
    env: LocalLogfire, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    assert main(["query", SQL, *argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert flag in err
    assert "`" not in err.split("Hint:")[0]  # no Python argument spelling like `limit` or `limit=`


def test_13_no_token_names_the_flag(server: LocalLogfire, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", SQL, "--base-url", server.base_url]) == 1
    assert "pass --read-token or set the LOGFIRE_READ_TOKEN" in capsys.readouterr().err


def test_13_failed_export_leaves_no_file(env: LocalLogfire, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "records.parquet"
    env.faults.push("500", after=2)
    argv = ["query", SQL, "--out", str(out), "--slices", "6", "--max-concurrency", "1", "--progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "\nlogfire-io: error: slice [" in err  # the progress line was ended before the message
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial twin


@pytest.fixture(scope="module")
def slow_server() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=20_000, demo_end=DEMO_END, seed=7, latency_ms=4_000, workers=1) as srv:
        yield srv


def test_13_ctrl_c_stops_promptly_and_leaves_no_file(slow_server: LocalLogfire, tmp_path: Path) -> None:
    out = tmp_path / "records.parquet"
    argv = [
        *("query", SQL, "--out", str(out), "--slices", "8", "--max-concurrency", "2", "--progress"),
        *("--min-timestamp", (DEMO_END - timedelta(days=2)).isoformat(), "--max-timestamp", DEMO_END.isoformat()),
        *("--read-token", slow_server.read_token, "--base-url", slow_server.base_url),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "logfire_io._cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".records.parquet.*.partial")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert list(tmp_path.glob("*.partial")), "the export never started writing"
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        stopped = time.monotonic() - interrupted
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert stopped < 2.5, f"took {stopped:.1f} s to stop"
    match = re.search(r"\nlogfire-io: interrupted after ([\d,]+) rows had been fetched; nothing was written to", err)
    assert match, err
    assert int(match[1].replace(",", "")) > 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("since", ["800000d", "99999999999d"])
def test_13_since_before_year_one_is_a_usage_error(since: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["query", "SELECT 1", "--since", since])
    assert exited.value.code == 2
    assert f"argument --since: {since!r} reaches back before the year 1" in capsys.readouterr().err


CLI_ERRORS = {
    "limit zero": ["--limit", "0"],
    "limit too large": ["--limit", str(10**13)],
    "concurrency zero": ["--max-concurrency", "0"],
    "slices zero": ["--slices", "0"],
    "too many slices": [*WINDOW, "--slices", "200000"],
    "window before 1678": ["--min-timestamp", "1500-01-01"],
    "window after 2262": ["--max-timestamp", "2300-01-01T00:00:00+02:00"],
    "since before 1678": ["--since", "200000d"],
    "window reversed": ["--min-timestamp", "2026-01-02", "--max-timestamp", "2026-01-01"],
    "slices of an unsliceable query": ["--slices", "4", "--sql", "SELECT count(*) AS n FROM records"],
}


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_13_every_cli_error_speaks_in_flags_and_iso_times(
    env: LocalLogfire, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Each error the query command can print: flags, not Python arguments or values; times in ISO 8601."""
    argv = CLI_ERRORS[case]
    sql = argv[argv.index("--sql") + 1] if "--sql" in argv else SQL
    argv = [a for a in argv if a not in ("--sql", sql)]
    try:
        code = main(["query", sql, *argv, "--no-progress"])
    except SystemExit as exited:  # argparse's own usage error
        code = exited.code
    err = capsys.readouterr().err
    assert code in (1, 2), err
    assert re.search(r"--[a-z]", err), err  # names the flag
    for python in ("`", "None", "True", "datetime.", "timedelta", "=None", "tzinfo", " int,"):
        assert python not in err, f"{python!r} in {err!r}"


def test_13_export_errors_speak_in_flags(env: LocalLogfire, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stray.txt").write_text("not an export")
    assert main(["query", SQL, *WINDOW, "--out", str(tmp_path), "--partition-by", "day", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--out" in err
    assert "`" not in err, err
    (tmp_path / "stray.txt").unlink()
    assert main(["query", SQL, *WINDOW, "--out", str(tmp_path), "--partition-by", "day", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["query", SQL, *WINDOW, "--out", str(tmp_path), "--partition-by", "day", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err
    assert "`" not in err, err
    assert "True" not in err, err
