"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

if TYPE_CHECKING:
    import polars as pl

json_keys = st.one_of(
    st.sampled_from(
        ["http.method", "user", "a", "a.b", "a/b", "[]", "gen_ai.usage.input_tokens", "ключ", "emoji😀", "", "n"]
    ),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: f == f and abs(f) < 1e300),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)


def nested_json(
    scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str], max_leaves: int
) -> st.SearchStrategy[Any]:
    """JSON values: ``scalars``, and lists and objects (with ``keys``) of them, up to ``max_leaves`` scalars."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)),
        max_leaves=max_leaves,
    )


json_values = nested_json(json_scalars, json_keys, max_leaves=8)
json_objects = st.dictionaries(json_keys, json_values, max_size=5)

# The shapes that have broken JSON decoding: few keys (so types clash between rows), ISO-date-like strings (Arrow's
# reader turns them into timestamps), keys with quotes and backslashes, integers past float64's exact range and past
# int64, and the non-finite numbers Python's json module writes.
awkward_json_keys = st.sampled_from(
    ["id", "user", "when", "it's", 'say "x"', "back\\slash", "a.b", "A", "a", "", "é", "a]b", "$", "v", "tab\tkey"]
)
awkward_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.integers(2**53 + 1, 2**63 - 1),
    st.integers(2**63, 2**80).flatmap(lambda n: st.sampled_from([n, -n])),
    st.floats(width=64),
    st.sampled_from(["2020-01-01", "2021-02-03 04:05:06", "1990-03-14T10:00:00.123+02:00", "u-7", "é😀", "\x00"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
)
awkward_json_values = nested_json(awkward_json_scalars, awkward_json_keys, max_leaves=6)


@st.composite
def json_object_texts(draw: st.DrawFn) -> str:
    """The text of one JSON object as a writer might emit it: compact or spaced, each member ASCII-escaped or not
    (so one key has two spellings), sometimes pretty-printed, sometimes with a key repeated (JSON readers keep the
    last)."""
    pairs = draw(st.lists(st.tuples(awkward_json_keys, awkward_json_values, st.booleans()), max_size=4))
    style = draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n  ", ": ")]))
    members = [
        json.dumps(k, ensure_ascii=ascii_) + style[1] + json.dumps(v, ensure_ascii=ascii_) for k, v, ascii_ in pairs
    ]
    return "{" + style[0].join(members) + "}"


json_columns = st.lists(st.one_of(st.none(), json_object_texts()), min_size=1, max_size=10)
"""The texts of one JSON column, SQL NULLs included."""


def instants(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    """Microsecond instants in ``[low, high]``."""
    span = int((high - low) / timedelta(microseconds=1))
    return st.integers(0, span).map(lambda us: low + timedelta(microseconds=us))


def windows(low: datetime, high: datetime, anchors: list[datetime]) -> st.SearchStrategy[tuple[datetime, datetime]]:
    """Windows inside ``[low, high]`` whose edges are often exactly on ``anchors`` (bursts, boundaries)."""
    edge = st.one_of(instants(low, high), st.sampled_from(anchors))
    return st.tuples(edge, edge).map(sorted).filter(lambda w: w[0] < w[1]).map(tuple)  # type: ignore[arg-type]


def at_utc(value: Any) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def boolean_combinations(atoms: st.SearchStrategy[pl.Expr]) -> st.SearchStrategy[pl.Expr]:
    """Predicates built from ``atoms`` with ``&``, ``|`` and ``~``, up to four atoms."""
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda t: t[0] & t[1]),
            st.tuples(inner, inner).map(lambda t: t[0] | t[1]),
            inner.map(lambda e: ~e),
        ),
        max_leaves=4,
    )
