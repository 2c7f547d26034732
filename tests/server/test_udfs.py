"""The JSON UDFs, fast (polars kernels) and exact (walker) paths alike, equal the ``json.loads`` reference.

Random documents, spelled compactly or spaced, with the looked-up key also appearing as a value, nested, or
duplicated inside strings (which sends rows from the vectorised path to the walker), run through the UDFs as
DataFusion calls them (a real session with :func:`register_udfs`), against :mod:`tests.server.json_reference`.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from datafusion import SessionContext
from hypothesis import given, settings
from hypothesis import strategies as st

from logfire_io.server.udfs import register_udfs
from tests.server.json_reference import FUNCTIONS, KINDS, expected, matches

NAMES = ["k", "a", "0", "1", "a.b", "ü", 'q"', "k\\u"]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["k", '"k"', "x", '{"k": 1}', "", "12", "true"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=4),
    max_leaves=12,
)
_DOCUMENTS = st.lists(
    st.one_of(
        st.tuples(st.dictionaries(st.sampled_from(NAMES), _VALUES, max_size=5), st.booleans(), st.booleans()).map(
            lambda t: json.dumps(t[0], separators=(",", ":") if t[1] else None, ensure_ascii=t[2])
        ),
        _VALUES.map(json.dumps),
        st.sampled_from([None, "not json", '{"k": ', "[1, 2", '{"k": true, "a": {"k": 1}', '{"k": {"a": 0}, ']),
    ),
    min_size=1,
    max_size=12,
)
_PATHS = st.sampled_from([("k",), ("a",), ("0",), ("a.b",), ('q"',), ("ü",), ("k", "a"), ("a", 0), ("k", -1), (1,), ()])


def _run(documents: list[str | None], function: str, steps: tuple[Any, ...]) -> list[Any]:
    ctx = SessionContext()
    register_udfs(ctx)
    ctx.register_record_batches("t", [[pa.record_batch({"doc": pa.array(documents, pa.string())})]])
    path = json.dumps(list(steps)).replace("'", "''")
    return ctx.sql(f"SELECT {function}(doc, '{path}') AS v FROM t").to_arrow_table().column("v").to_pylist()


@settings(max_examples=40, deadline=None)
@given(_DOCUMENTS, _PATHS, st.sampled_from(FUNCTIONS))
def test_udfs_equal_the_reference(documents: list[str | None], steps: tuple[Any, ...], function: str) -> None:
    kind = KINDS.get(function, "exact")
    for document, result in zip(documents, _run(documents, function, steps), strict=True):
        wanted = expected(function, document, steps)
        assert matches(kind, result, wanted), (document, result, wanted)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_key_that_is_also_a_value_or_nested_is_not_taken_for_the_member(function: str) -> None:
    """The fast path must not read ``"k"`` occurring as a value, in a nested object, or inside a string."""
    documents = [
        '{"x": "k", "k": 5}',
        '{"o": {"k": 1}}',
        '{"s": "a\\"k\\": 2", "k": [1]}',
        '{"k": null}',
        '{"k": 1.50, "k2": 1}',
        '{"\\u006b": "escaped"}',
        '{"k": "v", "k": "second"}',
    ]
    first_wins = {'{"k": "v", "k": "second"}': '{"k": "v"}'}  # datafusion-functions-json reads the first member
    for document, result in zip(documents, _run(documents, function, ("k",)), strict=True):
        wanted = expected(function, first_wins.get(document, document), ("k",))
        assert matches(KINDS.get(function, "exact"), result, wanted), (document, result, wanted)


@pytest.mark.parametrize("function", ["json_get", "json_contains", "json_get_bool"])
def test_a_key_spelling_an_integer_indexes_arrays(function: str) -> None:
    """Found by the property above: the member search once answered ``'0'`` on ``[false]`` with nothing."""
    documents = ["[false]", '{"0": true}', "[[true]]"]
    for document, result in zip(documents, _run(documents, function, ("0",)), strict=True):
        assert matches(KINDS.get(function, "exact"), result, expected(function, document, ("0",)))
    assert _run(["[false]"], "json_contains", ("0",)) == [True]
