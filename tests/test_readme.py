"""Issue 13: the README's snippets run as written, against a local Logfire in place of the real one."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

import polars as pl
from logfire_io._cli import main
from logfire_io.server import LocalLogfire
from tests.helpers import SentQueries

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.DOTALL)
TESTED_ELSEWHERE = ("LocalCluster", "logfire.configure")
"""Blocks run by their own tests: tests/dask (a cluster of processes), tests/server/test_ingest_readme.py (the SDK)."""
PYTHON = [code for language, code in BLOCKS if language == "python" and not any(m in code for m in TESTED_ELSEWHERE)]
COMMANDS = [
    line
    for language, code in BLOCKS
    if language == "bash"
    for line in code.splitlines()
    if line.startswith("logfire-io ")
]


@pytest.fixture(scope="module")
def recent() -> Iterator[LocalLogfire]:
    """A server whose rows end at the next hour, as the README's ``since 7 days`` expects of a live project."""
    with LocalLogfire(demo_rows=5_000, seed=11) as srv:
        yield srv


@pytest.fixture
def env(recent: LocalLogfire, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LocalLogfire:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", recent.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", recent.base_url)
    monkeypatch.chdir(tmp_path)
    return recent


def test_13_readme_has_the_snippets_tested_here() -> None:
    assert len(PYTHON) == 4
    assert [shlex.split(c)[:2] for c in COMMANDS] == [["logfire-io", "query"]] * 3


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_13_readme_python_runs_as_written(env: LocalLogfire, index: int, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(PYTHON[index], f"README.md python block {index + 1}", "exec"), namespace)
    frames = [v for v in namespace.values() if isinstance(v, pl.DataFrame)]
    assert frames
    assert all(f.height > 0 for f in frames if f is namespace.get("df"))
    if index == 0:
        assert namespace["errors"].columns == ["start_timestamp", "service_name", "exception_type"]  # type: ignore[attr-defined]
        assert capsys.readouterr().out.strip()  # the client loop printed its batches


def test_readme_attributes_pushdown_fetches_only_the_declared_keys(env: LocalLogfire) -> None:
    (code,) = (block for block in PYTHON if "errors_per_route" in block)
    sent = SentQueries(env)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md attributes pushdown", "exec"), namespace)
    result = namespace["errors_per_route"]
    assert isinstance(result, pl.DataFrame)
    assert result.height > 0
    assert result["http.route"].str.starts_with("/api").all()
    texts = [q.sql for q in sent()]
    assert texts
    assert all("TRY_CAST" in sql and not re.search(r'(?<!json_length\()"attributes"(?! ->> )', sql) for sql in texts)


def test_13_readme_export_command_runs_as_written(env: LocalLogfire, tmp_path: Path) -> None:
    (command,) = (c for c in COMMANDS if "--partition-by" not in c and "--since-last" not in c)
    assert main(shlex.split(command)[1:]) == 0
    (written,) = tmp_path.iterdir()
    frame = pl.read_parquet(written)
    assert frame.height > 0
    assert set(frame["service_name"]) == {"checkout"}


def test_readme_partitioned_export_commands_run_as_written(env: LocalLogfire, tmp_path: Path) -> None:
    first, nightly = (c for c in COMMANDS if "--partition-by" in c or "--since-last" in c)
    assert main(shlex.split(first)[1:]) == 0
    assert main(shlex.split(nightly, comments=True)[1:]) == 0
    exported = pl.scan_parquet(tmp_path / "exports/records/**/*.parquet", hive_partitioning=True).collect()
    assert exported.height > 0
    assert exported["span_id"].n_unique() == exported.height
