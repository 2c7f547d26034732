"""Logfire's JSON operators and functions in every position, against a reference written from their documentation.

The reference (``find`` and the ``_as_*`` conversions) is ``json.loads`` plus the rules written down in
:mod:`logfire_io.server.udfs` (from ``datafusion-functions-json``): it shares no code with the server. Each
expression runs in a projection, a WHERE, a CASE, a function argument, ORDER BY and (where its values are exact)
GROUP BY, over the documents of :mod:`tests.server.corpus_data`, through the real server over loopback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.corpus_data import DOCUMENTS, KEYS, post_arrow
from tests.server.json_reference import (
    MISSING,
    as_bool,
    as_float,
    as_int,
    as_json,
    as_keys,
    as_length,
    as_str,
    as_text,
    find,
    matches,
)

ROWS = range(len(DOCUMENTS))


@dataclass(frozen=True)
class Expr:
    """A JSON expression, the Arrow type it has, and its reference value for row ``i``."""

    sql: str
    kind: str
    """``text`` (string, non-strings compared as parsed JSON), ``json`` (JSON text), or an exact value kind."""
    type_: pa.DataType
    expected: Callable[[int], Any]

    def exact(self) -> bool:
        """Whether every reference value is the literal result (no JSON text to compare parsed)."""
        values = [self.expected(i) for i in ROWS]
        if self.kind == "text":
            return all(v is None or isinstance(v, str) for v in values)
        return self.kind != "json" and all(not isinstance(v, dict | list) for v in values)


def at(*steps: Any, convert: Callable[[Any], Any] = as_text) -> Callable[[int], Any]:
    return lambda i: convert(find(DOCUMENTS[i], steps))


def _reparsed(key: str, *steps: Any, convert: Callable[[Any], Any] = as_text) -> Callable[[int], Any]:
    """A lookup into the text ``->>`` gave (when Logfire does not merge the two into one path)."""

    def expected(i: int) -> Any:
        inner = as_text(find(DOCUMENTS[i], (key,)))
        text = inner if isinstance(inner, str) or inner is None else json.dumps(inner)
        return convert(find(text, steps))

    return expected


def _contains(*steps: Any) -> Callable[[int], Any]:
    return lambda i: find(DOCUMENTS[i], steps) is not MISSING


def _then(inner: Callable[[int], Any], outer: Callable[[Any], Any]) -> Callable[[int], Any]:
    return lambda i: None if inner(i) is None else outer(inner(i))


S, I64, F64, B, U64 = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.uint64()
EXPRESSIONS = [
    Expr("attributes->>'s'", "text", S, at("s")),
    Expr("attributes->'s'", "text", S, at("s")),
    Expr("attributes ->> 'n'", "text", S, at("n")),
    Expr("attributes->>'f'", "text", S, at("f")),
    Expr("attributes->>'t'", "text", S, at("t")),
    Expr("attributes->>'nul'", "text", S, at("nul")),
    Expr("attributes->>'big'", "text", S, at("big")),
    Expr("attributes->'o'->>'a'", "text", S, at("o", "a")),
    Expr("attributes->'o'->'b'->>0", "text", S, at("o", "b", 0)),
    Expr("attributes->'o'->'b'->>-1", "text", S, at("o", "b", -1)),
    Expr("attributes->'arr'->>'1'", "text", S, at("arr", "1")),
    Expr("attributes->'arr'->'0'", "text", S, at("arr", "0")),
    Expr("attributes->'o'", "text", S, at("o")),
    Expr("attributes->'arr'->1", "text", S, at("arr", 1)),
    Expr("attributes->'js'->>'x'", "text", S, at("js", "x")),
    Expr("attributes->>'js'->>'x'", "text", S, at("js", "x")),
    Expr("json_length(attributes->>'js')", "int", U64, _reparsed("js", convert=as_length)),
    Expr("json_length(attributes->'js')", "int", U64, at("js", convert=as_length)),
    Expr("attributes->>'o' ? 'a'", "bool", B, _reparsed("o", "a", convert=lambda v: v is not MISSING)),
    Expr("attributes->>'o'->>span_name", "text", S, lambda i: _reparsed("o", KEYS[i])(i)),
    Expr("attributes->>span_name", "text", S, lambda i: as_text(find(DOCUMENTS[i], (KEYS[i],)))),
    Expr("attributes->(span_name)->>0", "text", S, lambda i: as_text(find(DOCUMENTS[i], (KEYS[i], 0)))),
    Expr("attributes->'k.with.dots'->'deep'->0->>'z'", "text", S, at("k.with.dots", "deep", 0, "z")),
    Expr("attributes->>'quote''s'", "text", S, at("quote's")),
    Expr("attributes->>'ünï'", "text", S, at("ünï")),
    Expr("attributes->>'s' || '!'", "text", S, _then(at("s", convert=as_str), lambda v: v + "!")),
    Expr("'<' || attributes->>'s'", "text", S, lambda i: None),  # ('<' || attributes)->>'s' is never JSON
    Expr("upper(attributes->>'s')", "text", S, _then(at("s", convert=as_str), str.upper)),
    Expr("length(attributes->'o'->>'a')", "int", pa.int32(), _then(at("o", "a", convert=as_str), len)),
    Expr("coalesce(attributes->'http.route', 'n/a')", "text", S, lambda i: "n/a"),
    Expr("coalesce(attributes->>'s', 'n/a')", "text", S, lambda i: at("s")(i) if at("s")(i) is not None else "n/a"),
    Expr("attributes ? 's'", "bool", B, _contains("s")),
    Expr("attributes ? 'nul'", "bool", B, _contains("nul")),
    Expr("attributes->'o' ? 'a'", "bool", B, _contains("o", "a")),
    Expr("json_get_str(attributes, 'o', 'a')", "str", S, at("o", "a", convert=as_str)),
    Expr("json_get_str(attributes, span_name)", "str", S, lambda i: as_str(find(DOCUMENTS[i], (KEYS[i],)))),
    Expr("json_get_int(attributes, 'n')", "int", I64, at("n", convert=as_int)),
    Expr("json_get_int(attributes, 'f')", "int", I64, at("f", convert=as_int)),
    Expr("json_get_float(attributes, 'n')", "float", F64, at("n", convert=as_float)),
    Expr("json_get_float(attributes, 'f')", "float", F64, at("f", convert=as_float)),
    Expr("json_get_bool(attributes, 't')", "bool", B, at("t", convert=as_bool)),
    Expr("json_get_json(attributes, 'o')", "json", S, at("o", convert=as_json)),
    Expr("json_get_json(attributes, 'nul')", "json", S, at("nul", convert=as_json)),
    Expr("json_length(attributes)", "int", U64, at(convert=as_length)),
    Expr("json_length(attributes, 'arr')", "int", U64, at("arr", convert=as_length)),
    Expr("json_length(attributes->'o'->'b')", "int", U64, at("o", "b", convert=as_length)),
    Expr("json_keys(attributes, 'o')", "keys", pa.list_(S), at("o", convert=as_keys)),
    Expr("json_object_keys(attributes)", "keys", pa.list_(S), at(convert=as_keys)),
    Expr("json_as_text(attributes, 'arr', 0)", "text", S, at("arr", 0)),
    Expr("json_contains(attributes, 'o', 'b')", "bool", B, _contains("o", "b")),
    Expr("json_get(attributes, 'arr', -1)", "text", S, at("arr", -1)),
    Expr("(attributes->'n')::int", "int", I64, at("n", convert=as_int)),
    Expr("(attributes -> 'f')::numeric", "float", F64, at("f", convert=as_float)),
    Expr("(attributes->'s')::text", "str", S, at("s", convert=as_str)),
    Expr("CAST(attributes->'t' AS boolean)", "bool", B, at("t", convert=as_bool)),
    Expr("(attributes->'o'->'b'->0)::bigint", "int", I64, at("o", "b", 0, convert=as_int)),
]


def _present(kind: str, expected: Any) -> bool:
    return expected is not MISSING if kind == "json" else expected is not None


def _sort_key(value: Any) -> Any:
    return (value is not None, value)


def _query(http: httpx.Client, sql: str) -> pa.Table:
    table = post_arrow(http, sql)
    assert isinstance(table, pa.Table), f"{sql}\n{table}"
    return table


def _by_row(table: pa.Table) -> dict[int, Any]:
    return dict(zip(map(int, table.column("message").to_pylist()), table.column("v").to_pylist(), strict=True))


def _orderable(e: Expr) -> bool:
    return e.exact() and e.kind in ("str", "int", "float", "bool", "text")


def check_select_and_order(http: httpx.Client, e: Expr) -> None:
    """Positions SELECT (values and Arrow type) and, where the values sort, ORDER BY."""
    order_by = f"{e.sql} NULLS FIRST, message" if _orderable(e) else "message"
    table = _query(http, f"SELECT message, {e.sql} AS v FROM records ORDER BY {order_by}")
    assert table.schema.field("v").type == e.type_
    got = _by_row(table)
    for i in ROWS:
        assert matches(e.kind, got[i], e.expected(i)), (i, DOCUMENTS[i], got[i], e.expected(i))
    if _orderable(e):
        order = [int(m) for m in table.column("message").to_pylist()]
        assert order == sorted(ROWS, key=lambda i: (_sort_key(e.expected(i)), str(i)))


def check_where(http: httpx.Client, e: Expr) -> None:
    condition = f"{e.sql}" if e.kind == "bool" else f"{e.sql} IS NOT NULL"
    table = _query(http, f"SELECT message FROM records WHERE {condition} AND level >= 0")
    wanted = {i for i in ROWS if (e.expected(i) is True if e.kind == "bool" else _present(e.kind, e.expected(i)))}
    assert set(map(int, table.column("message").to_pylist())) == wanted


def check_argument_and_case(http: httpx.Client, e: Expr) -> None:
    """Positions function argument (an aggregate's) and CASE."""
    sql = f"SELECT count({e.sql}) AS n, sum(CASE WHEN {e.sql} IS NULL THEN 1 ELSE 0 END) AS nulls FROM records"
    present = sum(_present(e.kind, e.expected(i)) for i in ROWS)
    assert _query(http, sql).to_pylist() == [{"n": present, "nulls": len(ROWS) - present}]


def check_group(http: httpx.Client, e: Expr) -> None:
    table = _query(http, f"SELECT {e.sql}, count(*) AS n FROM records GROUP BY {e.sql}")
    got = Counter(dict(zip(table.column(0).to_pylist(), table.column("n").to_pylist(), strict=True)))
    assert got == Counter(e.expected(i) for i in ROWS)


POSITIONS: dict[str, tuple[Callable[[httpx.Client, Expr], None], Callable[[Expr], bool]]] = {
    "select+order": (check_select_and_order, lambda e: True),
    "where": (check_where, lambda e: True),
    "argument+case": (check_argument_and_case, lambda e: True),
    "group": (check_group, lambda e: e.exact() and e.kind != "keys"),
}
CASES = [(name, e) for e in EXPRESSIONS for name, (_, applies) in POSITIONS.items() if applies(e)]


def test_corpus_is_large_and_covers_every_position() -> None:
    assert len(CASES) >= 100
    assert {name for name, _ in CASES} == set(POSITIONS)
    assert sum(_orderable(e) for e in EXPRESSIONS) >= 20


@pytest.mark.parametrize(("position", "e"), CASES, ids=[f"{p}:{e.sql}" for p, e in CASES])
def test_json_expression(corpus_http: httpx.Client, position: str, e: Expr) -> None:
    POSITIONS[position][0](corpus_http, e)


def test_reference_agrees_with_hand_values() -> None:
    """The reference itself, on values read off the documents by hand."""
    assert at("o", "b", -1)(0) == 30
    assert at("arr", "1")(0) == "two"
    assert at("arr", "0")(5) == "zero"
    assert at("js", "x")(2) is None
    assert _reparsed("js", "x")(2) == 1
    assert _reparsed("js", convert=as_length)(11) == 2
    assert at("n", convert=as_int)(4) == 2**63 - 1
    assert at("big", convert=as_int)(2) is None
    assert at("n", convert=as_int)(2) is None  # 1.0 is not an integer
    assert at("f", convert=as_float)(1) == 2.0
    assert _contains("nul")(1) is True
    assert _contains("s")(9) is False  # a NULL document contains nothing


_STEPS = {"'s'": "s", "'o'": "o", "'a'": "a", "'b'": "b", "'arr'": "arr", "'n'": "n", "'1'": "1", "0": 0, "-1": -1}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(["->", "->>"]), st.sampled_from(list(_STEPS))), min_size=1, max_size=4),
    st.sampled_from(["", " ", "\n  "]),
    st.sampled_from(["{}", "coalesce({}, 'none')", "CASE WHEN {} IS NULL THEN 'none' ELSE {} END", "({})"]),
)
def test_random_literal_chains_are_one_path_lookup(
    corpus_http: httpx.Client, chain: list[tuple[str, str]], space: str, wrap: str
) -> None:
    """Any chain of ``->``/``->>`` with literal keys, in any spacing and context, is one path lookup."""
    expression = "attributes" + "".join(f"{space}{op}{space}{key}" for op, key in chain)
    table = _query(corpus_http, f"SELECT message, {wrap.format(expression, expression)} AS v FROM records")
    steps = tuple(_STEPS[key] for _, key in chain)
    for i, result in _by_row(table).items():
        value = as_text(find(DOCUMENTS[i], steps))
        wanted = "none" if value is None and wrap != "{}" and wrap != "({})" else value
        assert matches("text", result, wanted), (expression, i, result, wanted)
