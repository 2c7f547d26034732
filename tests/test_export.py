"""Partitioned, resumable exports: the files together are one full read, every row once, whatever kills them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import logfire_io
import polars as pl
from logfire_io import ConfigurationError
from logfire_io.server import LocalLogfire
from tests.conftest import DEMO_END
from tests.helpers import SentQueries, make_records

SQL = "SELECT start_timestamp, span_id, level, attributes FROM records_all"
LOW, HIGH = DEMO_END - timedelta(hours=9, minutes=30), DEMO_END - timedelta(minutes=20)


def _periods(out: Path) -> int:
    try:
        return len(json.loads((out / "_manifest.json").read_text())["periods"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _exported(out: Path) -> pl.DataFrame:
    return pl.scan_parquet(out / "**/*.parquet", hive_partitioning=True).collect()


def _full_read(server: LocalLogfire, low: datetime, high: datetime) -> pl.DataFrame:
    return logfire_io.read_logfire(
        SQL,
        read_token=server.read_token,
        base_url=server.base_url,
        min_timestamp=low,
        max_timestamp=high,
        json_columns=None,
        progress=False,
    )


def _assert_exactly_once(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got["span_id"].n_unique() == got.height, "a row written twice"
    assert got.select(want.columns).sort("span_id").equals(want.sort("span_id"))


def test_an_export_is_one_full_read_split_into_hive_partitions(server: LocalLogfire, tmp_path: Path) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, "min_timestamp": LOW, "max_timestamp": HIGH}
    result = logfire_io.export(SQL, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert [s.hour for s, _ in result.written] == [(LOW + timedelta(hours=h)).hour for h in range(10)]
    assert not result.provisional  # DEMO_END is long past
    got = _exported(tmp_path / "out")
    _assert_exactly_once(got, _full_read(server, LOW, HIGH))
    assert set(got["hour"].to_list()) == {s.hour for s, _ in result.written}
    # A second run with resume fetches nothing: every period is final.
    sent = SentQueries(server)
    again = logfire_io.export(SQL, tmp_path / "out", resume=True, **kwargs)  # type: ignore[arg-type]
    assert again.written == []
    assert len(again.skipped) == 10
    assert sent() == []


def test_an_export_killed_at_random_points_resumes_to_every_row_exactly_once(
    server: LocalLogfire, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "logfire_io._cli", "query", SQL, "--out", str(out), "--partition-by", "hour",
        "--min-timestamp", LOW.isoformat(), "--max-timestamp", HIGH.isoformat(),
        "--no-progress", "--max-concurrency", "1",
    ]  # fmt: skip
    env = {**os.environ, "LOGFIRE_READ_TOKEN": server.read_token, "LOGFIRE_BASE_URL": server.base_url}
    rng = random.Random(3)
    killed = 0
    for attempt, periods in enumerate(sorted(rng.sample(range(1, 10), 3))):
        process = subprocess.Popen(command + (["--resume"] if attempt else []), env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and _periods(out) < periods and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))  # anywhere in the next period: planning, fetching, writing
        process.send_signal(signal.SIGKILL)
        killed += process.wait() == -signal.SIGKILL
    assert killed, "no run was killed mid-export"
    finished = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert len(manifest["periods"]) == 10
    assert all((out / p["path"]).exists() for p in manifest["periods"].values())
    _assert_exactly_once(_exported(out), _full_read(server, LOW, HIGH))


@pytest.fixture
def recent() -> tuple[datetime, pa.Table]:
    now = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    starts = [now - timedelta(hours=3) + timedelta(minutes=7 * i) for i in range(26)]
    return now, make_records(starts)


def test_recent_periods_are_provisional_and_late_rows_arrive_next_run(
    recent: tuple[datetime, pa.Table], tmp_path: Path
) -> None:
    now, records = recent
    late = make_records([now - timedelta(minutes=3)], span_id=["late"], trace_id=["late"])
    out, low = tmp_path / "out", now - timedelta(hours=3)
    with LocalLogfire(records=records) as first:
        result = logfire_io.export(
            SQL, out, read_token=first.read_token, base_url=first.base_url, min_timestamp=low, now=now
        )
    hours = [datetime(2026, 6, 1, h, tzinfo=UTC) for h in (9, 10, 11, 12)]
    assert result.provisional == hours[2:]  # they end after now - 10 minutes
    assert "late" not in _exported(out)["span_id"].to_list()
    with LocalLogfire(records=pa.concat_tables([records, late])) as second:
        later = now + timedelta(minutes=30)
        again = logfire_io.export(
            SQL, out, read_token=second.read_token, base_url=second.base_url, since_last=True, now=later
        )
        want = _full_read(second, low, later)
    assert [s for s, _ in again.written] == hours[2:]  # fetched again: 11:00 is now final, 12:00 still not
    assert again.skipped == hours[:2]
    assert again.provisional == hours[3:]
    _assert_exactly_once(_exported(out), want)
    assert "late" in _exported(out)["span_id"].to_list()


def test_exports_refuse_what_they_cannot_do_safely(server: LocalLogfire, tmp_path: Path) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, "min_timestamp": LOW, "max_timestamp": HIGH}
    with pytest.raises(ConfigurationError, match="cannot be split"):
        logfire_io.export("SELECT count(*) FROM records", tmp_path / "agg", **kwargs)  # type: ignore[arg-type]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="not empty"):
        logfire_io.export(SQL, tmp_path / "busy", **kwargs)  # type: ignore[arg-type]
    logfire_io.export(SQL, tmp_path / "done", **{**kwargs, "min_timestamp": HIGH - timedelta(minutes=5)})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="resume"):
        logfire_io.export(SQL, tmp_path / "done", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="another query"):
        logfire_io.export(SQL + " WHERE level > 9", tmp_path / "done", resume=True, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="min_timestamp"):
        logfire_io.export(SQL, tmp_path / "new", read_token=server.read_token, base_url=server.base_url)


def test_a_resume_never_narrows_or_loses_what_is_kept(server: LocalLogfire, tmp_path: Path) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url}
    out = tmp_path / "out"
    logfire_io.export(SQL, out, min_timestamp=LOW, max_timestamp=HIGH, **kwargs)  # type: ignore[arg-type]
    want = _full_read(server, LOW, HIGH)
    # A narrower window on resume keeps every period whole.
    logfire_io.export(
        SQL,
        out,
        resume=True,
        min_timestamp=LOW + timedelta(minutes=20),
        max_timestamp=HIGH - timedelta(minutes=30),
        **kwargs,
    )  # type: ignore[arg-type]
    _assert_exactly_once(_exported(out), want)
    # A deleted part file is fetched again.
    manifest = json.loads((out / "_manifest.json").read_text())
    (out / next(iter(manifest["periods"].values()))["path"]).unlink()
    again = logfire_io.export(SQL, out, resume=True, max_timestamp=HIGH, **kwargs)  # type: ignore[arg-type]
    assert len(again.written) == 1
    _assert_exactly_once(_exported(out), want)


def test_a_resume_refuses_another_environment_or_a_damaged_manifest(server: LocalLogfire, tmp_path: Path) -> None:
    window = {"min_timestamp": HIGH - timedelta(hours=1), "max_timestamp": HIGH}
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, **window}
    logfire_io.export(SQL, tmp_path / "env", environment="prod", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="another query, environment"):
        logfire_io.export(SQL, tmp_path / "env", resume=True, **kwargs)  # type: ignore[arg-type]
    (tmp_path / "env" / "_manifest.json").write_text('{"periods": ')
    with pytest.raises(ConfigurationError, match="damaged"):
        logfire_io.export(SQL, tmp_path / "env", resume=True, environment="prod", **kwargs)  # type: ignore[arg-type]


def test_result_columns_the_folders_would_hide_are_refused(server: LocalLogfire, tmp_path: Path) -> None:
    window = {"min_timestamp": HIGH - timedelta(hours=1), "max_timestamp": HIGH}
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, **window}
    with pytest.raises(ConfigurationError, match="hive-style"):
        logfire_io.export("SELECT span_id, level AS hour FROM records", tmp_path / "hive", **kwargs)  # type: ignore[arg-type]


def test_two_exports_into_one_folder_at_once_are_refused(server: LocalLogfire, tmp_path: Path) -> None:
    from logfire_io._export import _locked

    with _locked(tmp_path / "busy"), pytest.raises(ConfigurationError, match="another export"):
        logfire_io.export(
            SQL, tmp_path / "busy", read_token=server.read_token, base_url=server.base_url, min_timestamp=LOW
        )


@pytest.mark.parametrize("flag", [["--dry-run"], ["--limit", "5"], ["--slices", "3"]])
def test_export_flags_that_do_not_apply_are_refused(
    server: LocalLogfire, tmp_path: Path, flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from logfire_io._cli import main

    sent = SentQueries(server)
    command = ["query", SQL, "--out", str(tmp_path / "o"), "--partition-by", "hour", "--min-timestamp", LOW.isoformat()]
    command += ["--max-timestamp", HIGH.isoformat(), *flag]
    assert main([*command, "--read-token", server.read_token, "--base-url", server.base_url]) == 1
    assert flag[0] in capsys.readouterr().err
    assert sent() == []
    assert not (tmp_path / "o" / "_manifest.json").exists()
