"""Regressions found by an adversary of attribute pushdown, each a minimal repro against the real local server.

The rule under test: a filter pushed as SQL must never drop a row that the same polars filter, applied to the
fields as the scan builds them, keeps (the scan filters every batch locally again, so extra rows are harmless).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import polars as pl
from logfire_io import ConfigurationError
from logfire_io._predicate import translate
from logfire_io.polars import read_logfire, scan_logfire
from logfire_io.server import LocalLogfire
from tests.helpers import make_records

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOCUMENTS = [
    {"n": " 7 ", "x": "\t2.5\n"},  # SQL's TRY_CAST trims ASCII whitespace around a number
    {"n": "7\r\n", "x": " inf"},
    {"n": 7, "x": 2.5},
    {"n": "7", "x": "2.5"},
    {"n": "\x0b7", "x": "\x0b2.5"},  # a vertical tab is not trimmed, by SQL nor here
    {},
]
DTYPE = pl.Struct({"n": pl.Int64, "x": pl.Float64})


@pytest.fixture(scope="module")
def odd() -> Iterator[LocalLogfire]:
    times = [T0 + timedelta(seconds=i) for i in range(len(DOCUMENTS))]
    records = make_records(times, attributes=[json.dumps(d) for d in DOCUMENTS])
    with LocalLogfire(records=records) as srv:
        yield srv


def _field(name: str) -> pl.Expr:
    return pl.col("attributes").struct.field(name)


def _scan(srv: LocalLogfire, dtype: pl.Struct = DTYPE) -> pl.LazyFrame:
    return scan_logfire(
        "records", read_token=srv.read_token, base_url=srv.base_url, json_columns={"attributes": dtype}, progress=False
    )


def _assert_pushed_equals_local(srv: LocalLogfire, predicate: pl.Expr, dtype: pl.Struct = DTYPE) -> pl.DataFrame:
    """The scan filtered with ``predicate`` (pushed) equals the whole scan filtered with it afterwards."""
    scan = _scan(srv, dtype).select("span_id", "attributes")
    got = scan.filter(predicate).collect().sort("span_id")
    assert got.equals(scan.collect().filter(predicate).sort("span_id"))
    return got


@pytest.mark.parametrize("predicate", [_field("n").is_null(), _field("x").is_null(), _field("n").is_not_null()])
def test_numbers_padded_with_whitespace_are_read_as_sql_casts_them(odd: LocalLogfire, predicate: pl.Expr) -> None:
    """Regression: ``" 7 "`` was null here but 7 in SQL, so a pushed ``is_null`` dropped a row polars keeps."""
    _assert_pushed_equals_local(odd, predicate)
    values = _scan(odd).select(_field("n"), _field("x")).collect()
    assert values["n"].to_list() == [7, 7, 7, 7, None, None]
    assert values["x"].to_list() == [2.5, float("inf"), 2.5, 2.5, None, None]


@pytest.fixture(scope="module")
def nulls() -> Iterator[LocalLogfire]:
    documents = ['{"a": 1}', "null", None, " null ", '{"a": null}', "{}"]
    records = make_records([T0 + timedelta(seconds=i) for i in range(len(documents))], attributes=documents)
    with LocalLogfire(records=records) as srv:
        yield srv


@pytest.mark.parametrize(
    "predicate", [None, pl.col("attributes").is_null(), pl.col("attributes").is_not_null(), _field("a").is_null()]
)
def test_a_json_null_document_is_a_null_struct_as_read_logfire_makes_it(
    nulls: LocalLogfire, predicate: pl.Expr | None
) -> None:
    """Regression: the text ``null`` became a struct of null fields (only SQL NULL was a null struct)."""
    dtype = pl.Struct({"a": pl.Int64})
    expected = read_logfire(
        "SELECT span_id, attributes FROM records",
        read_token=nulls.read_token,
        base_url=nulls.base_url,
        json_columns={"attributes": dtype},
        progress=False,
    )
    scan = _scan(nulls, dtype).select("span_id", "attributes")
    if predicate is not None:
        scan, expected = scan.filter(predicate), expected.filter(predicate)
    assert scan.collect().sort("span_id").equals(expected.sort("span_id"))
    assert expected.height > 0


def test_a_struct_without_fields_is_refused_when_the_scan_is_made() -> None:
    """Regression: ``pl.Struct({})`` failed at collect with polars' ValueError about ``as_struct``."""
    empty = {"attributes": pl.Struct({})}
    with pytest.raises(ConfigurationError, match=r"(?s)declares no field of 'attributes'.*Hint"):
        scan_logfire("records", read_token="t", base_url="http://127.0.0.1:9", json_columns=empty)


def test_a_filter_too_long_to_send_is_applied_locally(odd: LocalLogfire) -> None:
    """Regression: ``is_in`` with 60,000 values was pushed as a 1 MB request body, which the service refused."""
    values = [f"value-{i:08d}" for i in range(60_000)]
    got = _assert_pushed_equals_local(odd, (_field("n") == 7) | pl.col("span_id").is_in(values))
    assert got.height == 4
    pushed = translate(pl.col("span_id").is_in(values) & (_field("n") == 7), structs={"attributes": DTYPE})
    assert pushed.where == "(TRY_CAST((\"attributes\" ->> 'n') AS BIGINT) = 7)"
    assert not pushed.complete
