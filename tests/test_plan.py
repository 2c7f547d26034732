"""The dry run: ``plan()`` lists exactly the requests a read then sends, without reading a row."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

import logfire_io
import polars as pl
from logfire_io._cli import main
from logfire_io._protocol import MAX_LIMIT
from logfire_io.server import LocalLogfire
from tests.conftest import DEMO_END, DEMO_ROWS
from tests.helpers import SentQueries


@pytest.mark.parametrize(
    ("sql", "window", "slices", "limit"),
    [
        ("SELECT * FROM records_all", {}, None, None),  # open window, histogram plan
        ("SELECT span_id, level FROM records WHERE level >= 9", {"max_timestamp": DEMO_END}, 7, None),
        ("SELECT span_id, duration FROM records_all ORDER BY duration DESC", {}, timedelta(hours=5), 12_000),
        ("SELECT span_id FROM records WHERE level >= 17", {}, None, None),  # fits in one request
    ],
)
def test_a_read_sends_exactly_the_planned_requests(
    server: LocalLogfire, sql: str, window: dict[str, object], slices: object, limit: int | None
) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, "slices": slices, "limit": limit}
    sent = SentQueries(server)
    planned = logfire_io.plan(sql, **window, **kwargs)  # type: ignore[arg-type]
    planning = [q.sql for q in sent()]
    assert all("count(*)" in q for q in planning), "a dry run reads no row"
    sent = SentQueries(server)
    table = logfire_io.read_logfire_arrow(sql, json_columns=None, progress=False, **window, **kwargs)  # type: ignore[arg-type]
    texts = [q.sql for q in sent()]
    assert planned.sliceable
    assert len(texts) == planned.requests
    assert Counter(planned.slices["sql"].to_list()) <= Counter(texts)  # in any order: slices come in parallel
    assert planned.estimated_rows is not None
    if limit is None and "ORDER BY" not in sql and "WHERE" not in sql:
        assert planned.estimated_rows == table.num_rows == DEMO_ROWS
    assert planned.slices["estimated_rows"].sum() == pytest.approx(planned.estimated_rows, abs=planned.slices.height)
    assert "ReadPlan:" in repr(planned)


@pytest.mark.parametrize("slices", [1, timedelta(days=365)])
def test_explicit_slices_over_the_cap_are_planned_with_the_halves_the_read_fetches(
    server: LocalLogfire, slices: object
) -> None:
    """Regression: ``slices=`` giving a slice over the cap was planned as one request; the read bisects it."""
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, "slices": slices}
    planned = logfire_io.plan("SELECT span_id, start_timestamp FROM records_all", **kwargs)  # type: ignore[arg-type]
    sent = SentQueries(server)
    table = logfire_io.read_logfire_arrow(
        "SELECT span_id, start_timestamp FROM records_all",
        json_columns=None,
        progress=False,
        **kwargs,  # type: ignore[arg-type]
    )
    texts = [q.sql for q in sent()]
    assert table.num_rows == DEMO_ROWS
    assert len(texts) == planned.requests > 3  # the window's bounds, the full slice and at least two halves
    assert sorted(texts[-planned.slices.height :]) == sorted(planned.slices["sql"].to_list())
    full = planned.slices.filter(pl.col("estimated_rows") == MAX_LIMIT)
    assert full.height >= 1
    assert full["low"].min() == planned.slices["low"].min()


def test_a_query_that_cannot_be_split_is_one_request_with_its_reason(server: LocalLogfire) -> None:
    planned = logfire_io.plan(
        "SELECT span_name, count(*) FROM records GROUP BY span_name",
        read_token=server.read_token,
        base_url=server.base_url,
    )
    assert not planned.sliceable
    assert "aggregate" in (planned.reason or "")
    assert planned.requests == 1
    assert planned.slices["sql"].to_list() == ["SELECT span_name, count(*) FROM records GROUP BY span_name"]


def test_the_command_line_prints_the_plan_and_sends_no_data_request(
    server: LocalLogfire, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", server.base_url)
    sent = SentQueries(server)
    assert main(["query", "SELECT * FROM records_all", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("ReadPlan: ")
    assert f"about {DEMO_ROWS:,} rows" in printed
    assert all("count(*)" in q.sql for q in sent())
