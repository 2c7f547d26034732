"""scan_logfire with a struct dtype for ``attributes``: fields fetched one by one, filters on fields pushed."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polars as pl
from logfire_io import ConfigurationError
from logfire_io._fields import StructFields
from logfire_io._json_schema import struct_from_schemas
from logfire_io._predicate import translate
from logfire_io.polars import read_logfire, scan_logfire
from logfire_io.server import LocalLogfire
from tests.helpers import SentQueries
from tests.strategies import boolean_combinations

FIELDS = {
    "http.route": pl.String,
    "http.method": pl.String,
    "http.response.status_code": pl.Int64,
    "db.system": pl.String,
    "db.rows": pl.Int64,
    "operation.cost": pl.Float64,
    "gen_ai.usage.input_tokens": pl.Int32,
    "user_id": pl.String,  # an integer in most rows, a string in some: the text either way
}
ALL = pl.Struct(FIELDS)
KEYS = ["trace_id", "span_id"]
WHOLE_COLUMN = re.compile(r'(?<!json_length\()"attributes"(?! ->> )')
"""``"attributes"`` anywhere but in a field lookup or the null flag (``json_length``): its whole text is fetched."""


def _field(name: str) -> pl.Expr:
    return pl.col("attributes").struct.field(name)


@pytest.fixture(scope="module")
def everything(server: LocalLogfire) -> pl.DataFrame:
    """Every record, ``attributes`` decoded from its whole JSON text with the declared dtype."""
    return _read(server, "SELECT trace_id, span_id, span_name, attributes FROM records", ALL)


def _scan(server: LocalLogfire, dtype: pl.Struct, sql: str = "records") -> pl.LazyFrame:
    return scan_logfire(
        sql, read_token=server.read_token, base_url=server.base_url, json_columns={"attributes": dtype}, progress=False
    )


def _read(server: LocalLogfire, sql: str, dtype: pl.Struct) -> pl.DataFrame:
    """The reference: ``sql`` read whole, ``attributes`` decoded from its JSON text with ``dtype``."""
    return read_logfire(
        sql, read_token=server.read_token, base_url=server.base_url, json_columns={"attributes": dtype}, progress=False
    )


def _numeric(name: str) -> st.SearchStrategy[pl.Expr]:
    values = {"http.response.status_code": [200, 201, 404, 500], "db.rows": [0, 3, 50]}.get(name, [0, 100, 1000])
    value = st.sampled_from(values)
    return st.one_of(
        st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), value).map(
            lambda t: {
                "==": _field(name) == t[1],
                "!=": _field(name) != t[1],
                "<": _field(name) < t[1],
                "<=": _field(name) <= t[1],
                ">": _field(name) > t[1],
                ">=": _field(name) >= t[1],
            }[t[0]]
        ),
        st.lists(value, min_size=1, max_size=3).map(lambda v: _field(name).is_in(v)),
        st.tuples(value, value).map(lambda t: _field(name).is_between(min(t), max(t))),
    )


STRINGS = ["/health", "/api/orders/{id}", "GET", "POST", "postgresql", "sqlite", "u-1", "12", "'"]
atoms = st.one_of(
    st.sampled_from(list(FIELDS)).map(lambda f: _field(f).is_null()),
    st.sampled_from(list(FIELDS)).map(lambda f: _field(f).is_not_null()),
    st.sampled_from(["http.response.status_code", "db.rows", "gen_ai.usage.input_tokens"]).flatmap(_numeric),
    st.floats(0, 0.05).map(lambda f: _field("operation.cost") > f),
    st.tuples(st.sampled_from(["http.route", "http.method", "db.system", "user_id"]), st.sampled_from(STRINGS)).map(
        lambda t: _field(t[0]) == t[1]
    ),
    st.lists(st.sampled_from(STRINGS), min_size=1, max_size=3).map(lambda v: _field("http.route").is_in(v)),
    st.sampled_from(["/api", "/h", "post", "u-"]).map(lambda p: _field("http.route").str.starts_with(p)),
    st.sampled_from(["orders", "{id}", "gres"]).map(lambda p: _field("db.system").str.contains(p, literal=True)),
    st.just(_field("http.route").str.contains(r"^/api/(users|orders)")),  # a regex: filtered locally only
    st.just(_field("http.route").str.len_chars() > 8),  # not translatable
    st.sampled_from(["GET", "SELECT"]).map(lambda p: pl.col("span_name").str.starts_with(p)),
)
predicates = boolean_combinations(atoms)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    declared=st.lists(st.sampled_from(list(FIELDS)), min_size=1, max_size=4, unique=True),
    projected=st.data(),
    predicate=predicates,
)
def test_a_scan_equals_read_logfire_and_never_fetches_the_whole_attributes(
    server: LocalLogfire, everything: pl.DataFrame, declared: list[str], projected: st.DataObject, predicate: pl.Expr
) -> None:
    tree = predicate.meta.serialize(format="json")
    used = set(declared) | {name for name in FIELDS if f'"FieldByName":"{name}"' in tree}
    dtype = pl.Struct({name: FIELDS[name] for name in FIELDS if name in used})
    shown = projected.draw(st.lists(st.sampled_from(declared), min_size=1, unique=True))
    selection = [*KEYS, *(_field(name).alias(name) for name in shown)]
    sent = SentQueries(server)
    got = _scan(server, dtype).filter(predicate).select(selection).collect()
    expected = everything.filter(predicate).select(selection)
    assert got.sort(KEYS).equals(expected.sort(KEYS))
    texts = [q.sql for q in sent()]
    assert texts, "the scan sent a request"
    assert not [sql for sql in texts if WHOLE_COLUMN.search(sql)], "the whole attributes column was fetched"


def test_filters_on_fields_are_sql_with_typed_casts(server: LocalLogfire, everything: pl.DataFrame) -> None:
    dtype = pl.Struct({"http.route": pl.String, "http.response.status_code": pl.Int64})
    predicate = (_field("http.response.status_code") >= 400) & _field("http.route").str.starts_with("/api")
    sent = SentQueries(server)
    got = _scan(server, dtype).filter(predicate).select("span_id", _field("http.route")).collect()
    (sql,) = [q.sql for q in sent()]
    assert "TRY_CAST((\"attributes\" ->> 'http.response.status_code') AS BIGINT) >= 400" in sql
    assert "starts_with((\"attributes\" ->> 'http.route'), '/api')" in sql
    assert got.height == everything.filter(predicate).height > 0


def test_a_filter_that_cannot_be_pushed_is_applied_locally(server: LocalLogfire, everything: pl.DataFrame) -> None:
    dtype = pl.Struct({"http.route": pl.String, "user": pl.Struct({"plan": pl.String})})
    predicate = _field("user").struct.field("plan") == "pro"  # a nested field: not pushed
    sent = SentQueries(server)
    got = _scan(server, dtype).filter(predicate).select("span_id").collect()
    texts = [q.sql for q in sent()]
    assert texts
    assert not [sql for sql in texts if "'pro'" in sql]
    reference = _read(server, "SELECT span_id, attributes FROM records", dtype)
    assert got.sort("span_id").equals(reference.filter(predicate).select("span_id").sort("span_id"))
    assert 0 < got.height < reference.height


def test_a_null_document_stays_a_null_struct(server: LocalLogfire) -> None:
    sql = "SELECT span_id, CASE WHEN level >= 17 THEN NULL ELSE attributes END AS attributes FROM records"
    dtype = pl.Struct({"http.route": pl.String, "db.rows": pl.Int64})
    got = _scan(server, dtype, sql).collect()
    expected = _read(server, sql, dtype)
    assert got.sort("span_id").equals(expected.sort("span_id"))
    assert 0 < got["attributes"].null_count() < got.height


def test_boolean_and_nested_fields_are_built_from_their_text() -> None:
    dtype = pl.Struct({"ok": pl.Boolean, "user": pl.Struct({"id": pl.Int64}), "n": pl.UInt8})
    frame = pl.DataFrame(
        {
            "__logfire_attributes_0": ["true", "false", "1", None],
            "__logfire_attributes_1": ['{"id": 3}', None, '{"id": 4, "x": 1}', None],
            "__logfire_attributes_2": ["7", "300", "x", None],
            "__logfire_attributes_null": [False, False, False, True],
        }
    )
    built = StructFields({"attributes": dtype}).assemble(frame)
    assert built.columns == ["attributes"]
    assert built["attributes"].to_list() == [
        {"ok": True, "user": {"id": 3}, "n": 7},
        {"ok": False, "user": None, "n": None},
        {"ok": None, "user": {"id": 4}, "n": None},
        None,
    ]


def test_auto_builds_the_attributes_struct_from_the_windows_json_schemas(server: LocalLogfire) -> None:
    sent = SentQueries(server)
    scan = scan_logfire("records", read_token=server.read_token, base_url=server.base_url, json_columns="auto")
    dtype = scan.collect_schema()["attributes"]
    (schemas,) = [q.sql for q in sent()]
    assert "DISTINCT attributes_json_schema" in schemas
    assert dtype == pl.Struct({"user_id": pl.String})  # the only key the demo's SDK calls set from arguments
    sent = SentQueries(server)
    got = scan.select("span_id", _field("user_id")).collect()
    assert not [q.sql for q in sent() if WHOLE_COLUMN.search(q.sql) or "attributes_json_schema" in q.sql]
    expected = _read(server, "SELECT span_id, attributes FROM records", dtype).select("span_id", _field("user_id"))
    assert got.sort("span_id").equals(expected.sort("span_id"))
    assert got["user_id"].null_count() < got.height


def test_auto_types_a_key_only_when_every_schema_names_the_same_type() -> None:
    schemas = [
        '{"type":"object","properties":{"n":{"type":"integer"},"x":{},"cart":{"type":"object","properties":{}}}}',
        '{"type":"object","properties":{"n":{"type":"integer"},"f":{"type":"number"},"b":{"type":"boolean"}}}',
        '{"type":"object","properties":{"x":{"type":"integer"},"s":{"type":"string"}}}',
        "not JSON",
        "[1]",
    ]
    assert struct_from_schemas(schemas) == pl.Struct(
        {"n": pl.Int64, "x": pl.String, "cart": pl.String, "f": pl.Float64, "b": pl.Boolean, "s": pl.String}
    )
    assert struct_from_schemas([]) == pl.Struct({})


@pytest.mark.parametrize("source", ["metrics", "SELECT attributes FROM records"])
def test_auto_needs_a_table_with_json_schemas(source: str) -> None:
    with pytest.raises(ConfigurationError, match="records_all"):
        scan_logfire(source, read_token="t", base_url="http://127.0.0.1:9", json_columns="auto")


def test_a_temporal_field_is_refused_when_the_scan_is_made() -> None:
    dtype = pl.Struct({"at": pl.Datetime("us", "UTC")})
    with pytest.raises(ConfigurationError, match=r"(?s)'at'.*str\.to_datetime"):
        scan_logfire("records", read_token="t", base_url="http://127.0.0.1:9", json_columns={"attributes": dtype})


def test_a_field_whose_json_does_not_fit_its_nested_dtype_is_a_clear_error(server: LocalLogfire) -> None:
    dtype = pl.Struct({"http.route": pl.Struct({"a": pl.String})})  # the route is a string, not an object
    with pytest.raises(ConfigurationError, match=r"(?s)http\.route.*Hint: declare that field pl\.String"):
        _scan(server, dtype).filter(_field("http.route").is_not_null()).collect()


@pytest.mark.parametrize("dtype", [pl.UInt8, pl.Int32, pl.Float32, pl.Boolean])
def test_filters_on_fields_narrower_than_sql_types_stay_local(dtype: pl.DataType) -> None:
    """Regression: a UInt8 field holding 300 is null locally but 300 in SQL, so `is_null` must not be pushed."""
    structs = {"attributes": pl.Struct({"n": dtype, "s": pl.String})}
    pushed = translate(_field("n").is_null() & (_field("s") == "x"), structs=structs)
    assert pushed.where == "((\"attributes\" ->> 's') = 'x')"
    assert not pushed.complete
