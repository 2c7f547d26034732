"""Regressions found by an adversary of attribute pushdown, each a minimal repro against the real local server.

The rule under test: a filter pushed as SQL must never drop a row that the same polars filter, applied to the
fields as the scan builds them, keeps (the scan filters every batch locally again, so extra rows are harmless).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polars as pl
from logfire_io import ConfigurationError
from logfire_io._predicate import translate
from logfire_io.polars import read_logfire, scan_logfire
from logfire_io.server import LocalLogfire
from tests.helpers import make_records
from tests.strategies import boolean_combinations

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
NULLS = ['{"a": 1}', "null", None, " null ", '{"a": null}', "{}"]
TEXTS = [" 7 ", "7", "-7", "1e3", "5.0", "NaN", "inf", "-Infinity", "0x10", "", "100%_x", "école", "ÉCOLE", "a\\b", "'"]
VALUES = [7, -7, 0, 5.0, 2.5, -0.0, 1e300, 2**63, -(2**63), 2**64, True, False, None, {"k": 1}, [1, 2], *TEXTS]
ROGUES = pl.Struct({"n": pl.Int64, "x": pl.Float64, "s": pl.String})
GROUPS: dict[str, list[str | None]] = {
    "odd": [json.dumps(d) for d in DOCUMENTS],
    "nulls": NULLS,
    "rogues": [json.dumps({key: value}) for value in VALUES for key in ROGUES.to_schema()]
    + ["{}", "null", None, json.dumps({"n": 7, "x": 7, "s": "7"})],
}
"""Attributes documents, each group in its own hour of one server's records."""


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalLogfire]:
    times = [T0 + timedelta(hours=h, seconds=i) for h, docs in enumerate(GROUPS.values()) for i in range(len(docs))]
    records = make_records(times, attributes=[d for docs in GROUPS.values() for d in docs])
    with LocalLogfire(records=records) as server:
        yield server


def _window(group: str) -> dict[str, datetime]:
    start = T0 + timedelta(hours=list(GROUPS).index(group))
    return {"min_timestamp": start, "max_timestamp": start + timedelta(hours=1)}


def _field(name: str) -> pl.Expr:
    return pl.col("attributes").struct.field(name)


def _scan(srv: LocalLogfire, dtype: pl.Struct = DTYPE, group: str = "odd") -> pl.LazyFrame:
    """The records of one group scanned, ``attributes`` declared ``dtype``."""
    return scan_logfire(
        "records",
        read_token=srv.read_token,
        base_url=srv.base_url,
        json_columns={"attributes": dtype},
        progress=False,
        **_window(group),
    )


def _assert_pushed_equals_local(srv: LocalLogfire, predicate: pl.Expr) -> pl.DataFrame:
    """The scan filtered with ``predicate`` (pushed) equals the whole scan filtered with it afterwards."""
    scan = _scan(srv).select("span_id", "attributes")
    got = scan.filter(predicate).collect().sort("span_id")
    assert got.equals(scan.collect().filter(predicate).sort("span_id"))
    return got


@pytest.mark.parametrize("predicate", [_field("n").is_null(), _field("x").is_null(), _field("n").is_not_null()])
def test_numbers_padded_with_whitespace_are_read_as_sql_casts_them(srv: LocalLogfire, predicate: pl.Expr) -> None:
    """Regression: ``" 7 "`` was null here but 7 in SQL, so a pushed ``is_null`` dropped a row polars keeps."""
    _assert_pushed_equals_local(srv, predicate)
    values = _scan(srv).select(_field("n"), _field("x")).collect()
    assert values["n"].to_list() == [7, 7, 7, 7, None, None]
    assert values["x"].to_list() == [2.5, float("inf"), 2.5, 2.5, None, None]


@pytest.mark.parametrize(
    "predicate", [None, pl.col("attributes").is_null(), pl.col("attributes").is_not_null(), _field("a").is_null()]
)
def test_a_json_null_document_is_a_null_struct_as_read_logfire_makes_it(
    srv: LocalLogfire, predicate: pl.Expr | None
) -> None:
    """Regression: the text ``null`` became a struct of null fields (only SQL NULL was a null struct)."""
    dtype = pl.Struct({"a": pl.Int64})
    expected = read_logfire(
        "SELECT span_id, attributes FROM records",
        read_token=srv.read_token,
        base_url=srv.base_url,
        json_columns={"attributes": dtype},
        progress=False,
        **_window("nulls"),
    )
    scan = _scan(srv, dtype, "nulls").select("span_id", "attributes")
    if predicate is not None:
        scan, expected = scan.filter(predicate), expected.filter(predicate)
    assert scan.collect().sort("span_id").equals(expected.sort("span_id"))
    assert expected.height > 0


def test_a_struct_without_fields_is_refused_when_the_scan_is_made() -> None:
    """Regression: ``pl.Struct({})`` failed at collect with polars' ValueError about ``as_struct``."""
    empty = {"attributes": pl.Struct({})}
    with pytest.raises(ConfigurationError, match=r"(?s)declares no field of 'attributes'.*Hint"):
        scan_logfire("records", read_token="t", base_url="http://127.0.0.1:9", json_columns=empty)


@pytest.mark.parametrize("column", ["otel_events", "otel_links"])
def test_a_struct_for_an_array_column_is_refused_when_the_scan_is_made(column: str) -> None:
    """Regression: ``otel_events`` declared a struct came back as a struct of null fields, silently."""
    declared = {column: pl.Struct({"name": pl.String})}
    with pytest.raises(ConfigurationError, match=r"(?s)JSON array.*pl\.List\(pl\.Struct"):
        scan_logfire("records", read_token="t", base_url="http://127.0.0.1:9", json_columns=declared)


def test_a_filter_too_long_to_send_is_applied_locally(srv: LocalLogfire) -> None:
    """Regression: ``is_in`` with 60,000 values was pushed as a 1 MB request body, which the service refused."""
    values = [f"value-{i:08d}" for i in range(60_000)]
    got = _assert_pushed_equals_local(srv, (_field("n") == 7) | pl.col("span_id").is_in(values))
    assert got.height == 4
    pushed = translate(pl.col("span_id").is_in(values) & (_field("n") == 7), structs={"attributes": DTYPE})
    assert pushed.where == "(TRY_CAST((\"attributes\" ->> 'n') AS BIGINT) = 7)"
    assert not pushed.complete


_numbers = {
    "n": st.sampled_from([0, 7, -7, 5, 2**63 - 1, -(2**63)]),
    "x": st.sampled_from([0.0, -0.0, 7.0, 2.5, 1e300, float("inf")]),
}
_strings = st.sampled_from(["7", " 7 ", "%", "_", "école", "É", "'", "\\", "", "1e3", '{"k": 1}', "[1, 2]", "true"])
_rogue_atoms = st.one_of(
    st.sampled_from([*ROGUES.to_schema(), None]).map(
        lambda k: pl.col("attributes").is_null() if k is None else _field(k).is_null()
    ),
    st.sampled_from(["n", "x"]).flatmap(
        lambda k: st.tuples(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), _numbers[k]).map(
            lambda t: getattr(_field(k), t[0])(t[1])
        )
    ),
    st.sampled_from(["n", "x"]).flatmap(
        lambda k: st.lists(_numbers[k], min_size=1, max_size=3).map(lambda v: _field(k).is_in(v))
    ),
    st.tuples(st.sampled_from(["eq", "ne", "lt", "gt"]), _strings).map(lambda t: getattr(_field("s"), t[0])(t[1])),
    st.tuples(st.sampled_from(["starts_with", "ends_with"]), _strings).map(
        lambda t: getattr(_field("s").str, t[0])(t[1])
    ),
    _strings.map(lambda v: _field("s").str.contains(v, literal=True)),
    st.lists(_strings, min_size=1, max_size=3).map(lambda v: _field("s").is_in(v)),
)


@pytest.fixture(scope="module")
def rogue_frame(srv: LocalLogfire) -> pl.DataFrame:
    """The whole scan of the rogues, unfiltered: the fields as the scan builds them."""
    return _scan(srv, ROGUES, "rogues").select("span_id", "attributes").collect()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(predicate=boolean_combinations(_rogue_atoms), head=st.none() | st.integers(1, 5))
def test_pushed_filters_on_rogue_values_keep_what_polars_keeps(
    srv: LocalLogfire, rogue_frame: pl.DataFrame, predicate: pl.Expr, head: int | None
) -> None:
    """Values of every JSON type under keys declared Int64, Float64 and String: SQL never drops a kept row."""
    kept = rogue_frame.filter(predicate)
    scan = _scan(srv, ROGUES, "rogues").select("span_id", "attributes").filter(predicate)
    got = scan.collect() if head is None else scan.head(head).collect()
    assert got.height == (kept.height if head is None else min(head, kept.height))
    assert got.join(kept, on="span_id", how="anti", nulls_equal=True).is_empty()
    assert head is not None or got.sort("span_id").equals(kept.sort("span_id"))


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_an_infinite_literal_in_is_in_is_filtered_locally(srv: LocalLogfire, value: float) -> None:
    """Regression: ``is_in([inf])`` was pushed as ``IN (inf)``, which SQL reads as a column named inf."""
    got = _assert_pushed_equals_local(srv, _field("x").is_in([value, 2.5]))
    assert got.height == 3 + (value > 0)


@pytest.mark.parametrize("values", [[0.0], [0.0, 0.0], [-0.0, 7.0]])
def test_16_is_in_zero_keeps_negative_zero_as_polars_does(
    srv: LocalLogfire, rogue_frame: pl.DataFrame, values: list[float]
) -> None:
    """Regression: ``is_in([0.0, 0.0])`` was sent as SQL ``IN``, which tells -0.0 from 0.0 (``=`` does not)."""
    kept = rogue_frame.filter(_field("x").is_in(values))
    assert kept.height >= 2  # the rogues hold both a 0.0 and a -0.0
    scan = _scan(srv, ROGUES, "rogues")
    assert (
        scan.select("span_id", "attributes")
        .filter(_field("x").is_in(values))
        .collect()
        .sort("span_id")
        .equals(kept.sort("span_id"))
    )
