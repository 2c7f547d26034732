"""``logfire-io serve`` as a user runs it (issue 12): one clear line and an exit code, never a traceback;
stopping it by SIGTERM or SIGINT removes its temporary tables; every flag has help."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logfire_io._cli import _parser, main


def _serve(*args: str, tmp: Path) -> subprocess.Popen[str]:
    env = os.environ | {"TMPDIR": str(tmp)}  # so the test sees exactly this server's temporary tables
    return subprocess.Popen(
        [sys.executable, "-m", "logfire_io._cli", "serve", "--demo-rows", "500", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _one_line_error(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return process.returncode, lines[0]


def _announced(process: subprocess.Popen[str]) -> tuple[list[str], str, str]:
    """The lines ``serve`` printed up to "Ctrl-C", its base URL and its read token."""
    assert process.stdout is not None
    lines: list[str] = []
    while not any("Ctrl-C" in line for line in lines):
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        lines.append(line)
    base_url = next(line.split()[-1] for line in lines if "base URL" in line)
    token = next(line.split()[-1] for line in lines if "read token" in line)
    return lines, base_url, token


def _count(base_url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v2/query",
        json={"sql": "SELECT count(*) AS n FROM records_all", "min_timestamp": "2000-01-01T00:00:00Z"},
        headers={"authorization": token},
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_12_port_in_use_is_one_line_and_exit_1(busy_port: int, tmp_path: Path) -> None:
    code, line = _one_line_error(_serve("--port", str(busy_port), tmp=tmp_path))
    assert code == 1
    assert line.startswith(f"logfire-io: error: cannot listen on 127.0.0.1:{busy_port}: the port is already in use")
    assert list(tmp_path.iterdir()) == []


def test_missing_records_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    code, line = _one_line_error(_serve("--records", str(tmp_path / "nope.parquet"), tmp=tmp_path))
    assert code == 1
    assert "nope.parquet" in line


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "http"), ("--workers", "0"), ("--max-body-bytes", "lots"), ("--bounds", "[[")]
)
def test_bad_flag_is_one_line_and_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    code, line = _one_line_error(_serve(flag, value, tmp=tmp_path))
    assert code == 2
    assert line.startswith("logfire-io serve: error: argument")
    assert flag in line


@pytest.mark.parametrize(
    ("stop", "workers", "expected"),
    [(signal.SIGTERM, ["--workers", "3"], 3), (signal.SIGINT, [], max(2, os.cpu_count() or 2))],
)
def test_12_stop_signal_removes_temporary_tables(
    tmp_path: Path, stop: signal.Signals, workers: list[str], expected: int
) -> None:
    """Also: ``--workers N`` sets the pool's size, by default the CPU count and at least 2."""
    process = _serve("--port", "0", *workers, tmp=tmp_path)
    lines, base_url, token = _announced(process)
    assert f"  {expected} query workers" in "".join(lines)
    assert _count(base_url, token).json()["data"] == [{"n": 500}]
    assert next(p.name for p in tmp_path.iterdir()).startswith("logfire-io-")  # the tables, while serving
    process.send_signal(stop)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in out
    assert list(tmp_path.iterdir()) == []


def test_12_every_serve_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = commands.choices["serve"]
    flags = {action.option_strings[-1]: action.help for action in serve._actions if action.option_strings}
    assert {"--workers", "--max-body-bytes", "--max-result-bytes", "--deadline", "--bounds"} <= set(flags)
    assert all(help_text and len(help_text.split()) >= 3 for help_text in flags.values()), flags
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{,,,}" not in text  # argparse's usage line mangled the bracket choices
    assert "'[)' '[]' '(]' '()'" in text


def test_16_rate_limit_flag_answers_429_with_retry_after(tmp_path: Path) -> None:
    # One request per 10 s: the first passes, the next ones (however slow this machine) are refused.
    process = _serve("--port", "0", "--rate-limit", "0.1", tmp=tmp_path)
    try:
        _, base_url, token = _announced(process)
        answers = [_count(base_url, token) for _ in range(3)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert answers[0].status_code == 200
    limited = [a for a in answers[1:] if a.status_code == 429]
    assert limited
    assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
