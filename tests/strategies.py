"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

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
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(json_keys, children, max_size=3),
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(json_keys, json_values, max_size=5)


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
