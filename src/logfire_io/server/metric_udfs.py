"""Logfire's ``metric_*`` aggregate functions over the ``metrics`` table, as DataFusion UDAFs.

Logfire documents a ``value`` column on ``metrics`` ("the data point's value for any metric type; query it with
the metric_* functions") and the functions ``metric_quantile(p, value)``, ``metric_rate(value,
recorded_timestamp)``, ``metric_increase(value, recorded_timestamp)``, ``metric_merge(value)``,
``metric_avg(value)``, ``metric_sum(value)``, ``metric_count(value)``, ``metric_min(value)`` and
``metric_max(value)`` (``docs/guides/web-ui/explore.md``, ``docs/how-to-guides/write-dashboard-queries.md``).
Neither the layout of ``value`` nor the exact arithmetic is published; what follows is this server's choice,
and every point marked UNVERIFIED may differ on the real service.

``value`` (UNVERIFIED layout)
    A struct of the row's value columns, :data:`VALUE_TYPE`, built by :data:`VALUE_SQL` from the flat
    columns. Counts are widened to ``Int64`` so that merged values cannot overflow.

Which rows are what
    A row is an exponential histogram when ``exp_histogram_scale`` is set, an explicit histogram when
    ``histogram_bucket_counts`` is set, a histogram of unknown shape when only ``histogram_count`` is set, and a
    scalar (gauge or sum) when ``scalar_value`` is set; other rows are ignored. ``metric_type`` strings are not
    relied on (their values are UNVERIFIED).

``metric_count``, ``metric_sum``, ``metric_min``, ``metric_max``, ``metric_avg``
    Over every observation the group's rows describe: a histogram row contributes its ``histogram_count``,
    ``histogram_sum``, ``histogram_min``, ``histogram_max``; a scalar row is one observation of
    ``scalar_value``. ``metric_avg`` is ``metric_sum / metric_count``. Values are taken as stored: summing the
    points of a *cumulative* histogram counts observations again at every point (the logfire SDK exports
    histograms and counters with delta temporality, ``logfire/_internal/config.py``
    ``METRICS_PREFERRED_TEMPORALITY``). ``metric_count`` of no rows is 0; the others are NULL.

``metric_quantile(p, value)``
    The ``p``-quantile (``0 <= p <= 1``) of the distribution the rows describe: the smallest ``x`` at which the
    cumulative count reaches ``p`` times the total. Each histogram bucket spreads its count uniformly between
    its bounds (explicit buckets are ``(b[i-1], b[i]]``, exponential bucket ``i`` is ``(base**i, base**(i+1)]``
    with ``base = 2**(2**-scale)``, the zero bucket sits at 0), clipped to the group's ``metric_min`` and
    ``metric_max``; the open outer buckets of an explicit histogram end there (at the outer bound when those are
    NULL). A scalar row is a point mass at its value. Rows with different bounds or scales combine exactly, as
    a mixture. Clipping to the group's extremes rather than each row's is what makes ``metric_merge`` lossless.
    This is PromQL's ``histogram_quantile`` linear interpolation with min/max clipping (UNVERIFIED: Logfire may
    interpolate differently); on the synthetic data it agrees within 3 % with the bucket-unpacking query that
    Logfire's docs gave before ``metric_quantile`` existed (``tests/server/test_metric_udfs.py``).

``metric_increase(value, recorded_timestamp)``, ``metric_rate(value, recorded_timestamp)`` (UNVERIFIED)
    How much a counter grew over the group's rows, in time order: delta rows add their amount (a scalar's
    value, a histogram's count); cumulative rows add the differences between consecutive points, a drop being a
    counter reset that restarts from the new value; gauges give their last value minus their first. The rate
    is the increase per second of the window from the first delta point's ``start_timestamp`` (or the first
    cumulative point's time) to the last ``recorded_timestamp``; NULL when that window is empty. The group
    should hold one series (group by the attributes that tell series apart).

``metric_merge(value)``
    One ``value`` that stands for the group's rows, so that ``metric_quantile(p, merged)`` over pre-aggregated
    rows works: explicit histograms with the same bounds add their buckets; exponential histograms are brought
    down to the smallest scale and added (a lower scale is coarser: quantiles then move within a bucket);
    scalars keep their sum; count, sum, min and max are the group's. Explicit histograms with different bounds,
    explicit and exponential histograms together, or histograms with scalars cannot be merged without loss and
    are an error.

Until the dialect shim replaces ``value`` in the calls of :data:`METRIC_FUNCTIONS` with :func:`value_sql`, a
query spells it out: ``metric_quantile(0.95, named_struct(...))``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import Accumulator, SessionContext, udaf

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["METRIC_FUNCTIONS", "VALUE_SQL", "VALUE_TYPE", "register_metric_udfs", "value_sql"]

_COUNTS = pa.list_(pa.int64())
_VALUE_FIELDS: list[tuple[str, pa.DataType, str]] = [
    # (field, type, SQL that fills it from the metrics table's columns, {q} standing for a table qualifier)
    ("metric_type", pa.string(), "{q}metric_type"),
    ("aggregation_temporality", pa.string(), "{q}aggregation_temporality"),
    ("start_timestamp", pa.timestamp("us", tz="UTC"), "{q}start_timestamp"),
    ("scalar_value", pa.float64(), "{q}scalar_value"),
    ("histogram_count", pa.int64(), "CAST({q}histogram_count AS BIGINT)"),
    ("histogram_sum", pa.float64(), "{q}histogram_sum"),
    ("histogram_min", pa.float64(), "{q}histogram_min"),
    ("histogram_max", pa.float64(), "{q}histogram_max"),
    ("histogram_bucket_counts", _COUNTS, "CAST({q}histogram_bucket_counts AS BIGINT[])"),
    ("histogram_explicit_bounds", pa.list_(pa.float64()), "{q}histogram_explicit_bounds"),
    ("exp_histogram_scale", pa.int32(), "{q}exp_histogram_scale"),
    ("exp_histogram_zero_count", pa.int64(), "CAST({q}exp_histogram_zero_count AS BIGINT)"),
    ("exp_histogram_zero_threshold", pa.float64(), "{q}exp_histogram_zero_threshold"),
    ("exp_histogram_positive_bucket_counts", _COUNTS, "CAST({q}exp_histogram_positive_bucket_counts AS BIGINT[])"),
    ("exp_histogram_positive_bucket_counts_offset", pa.int32(), "{q}exp_histogram_positive_bucket_counts_offset"),
    ("exp_histogram_negative_bucket_counts", _COUNTS, "CAST({q}exp_histogram_negative_bucket_counts AS BIGINT[])"),
    ("exp_histogram_negative_bucket_counts_offset", pa.int32(), "{q}exp_histogram_negative_bucket_counts_offset"),
]
VALUE_TYPE = pa.struct([(name, type_) for name, type_, _ in _VALUE_FIELDS])
"""The type of the ``metrics.value`` struct these functions take (and ``metric_merge`` returns)."""


def value_sql(qualifier: str | None = None) -> str:
    """SQL over the ``metrics`` columns that builds ``value``, for ``value`` or ``<qualifier>.value``.

    This is what the dialect shim is to splice in place of a bare ``value`` argument of a ``metric_*`` call
    (``metric_quantile(0.95, m.value)`` with ``FROM metrics m`` takes ``value_sql("m")``).
    """
    prefix = f"{qualifier}." if qualifier else ""
    return "named_struct(" + ", ".join(f"'{name}', {sql.format(q=prefix)}" for name, _, sql in _VALUE_FIELDS) + ")"


VALUE_SQL = value_sql()
"""SQL over the unqualified ``metrics`` columns that builds ``value``."""

_TS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = dict[str, Any]


def _is_histogram(row: Row) -> bool:
    return any(row[k] is not None for k in ("exp_histogram_scale", "histogram_bucket_counts", "histogram_count"))


def _explicit_buckets(row: Row, low: float | None, high: float | None) -> Iterable[tuple[float, float, int]]:
    """(low, high, count) of each bucket; the open outer buckets end at ``low``/``high`` or at the outer bound."""
    bounds, counts = list(row["histogram_explicit_bounds"] or []), row["histogram_bucket_counts"]
    edges = [low if low is not None else bounds[0], *bounds, high if high is not None else bounds[-1]] if bounds else []
    for i, count in enumerate(counts if edges else []):
        if count and i + 1 < len(edges):
            yield edges[i], edges[i + 1], count


def _exponential_buckets(row: Row) -> Iterable[tuple[float, float, int]]:
    step = 2.0 ** -row["exp_histogram_scale"]  # log2 of the bucket base
    if row["exp_histogram_zero_count"]:
        yield 0.0, 0.0, row["exp_histogram_zero_count"]
    for sign, key in ((1.0, "positive"), (-1.0, "negative")):
        offset = row[f"exp_histogram_{key}_bucket_counts_offset"] or 0
        for k, count in enumerate(row[f"exp_histogram_{key}_bucket_counts"] or []):
            if count:
                low, high = sign * 2.0 ** ((offset + k) * step), sign * 2.0 ** ((offset + k + 1) * step)
                yield min(low, high), max(low, high), count


@dataclass(frozen=True)
class _Totals:
    """Count, sum, min and max of the observations some rows describe (see the module docstring).

    Computed on whole Arrow arrays, and small, so ``metric_count``/``sum``/``min``/``max``/``avg`` keep only
    these four numbers as their aggregation state instead of the rows.
    """

    count: int = 0
    sum: float | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: pa.Array) -> _Totals:
        """The totals of an array of ``value`` structs (NULL structs count for nothing)."""
        field = dict(zip(VALUE_TYPE.names, values.flatten(), strict=True))
        histogram = pc.or_(
            pc.or_(pc.is_valid(field["exp_histogram_scale"]), pc.is_valid(field["histogram_bucket_counts"])),
            pc.is_valid(field["histogram_count"]),
        )
        scalar = pc.and_(pc.invert(histogram), pc.is_valid(field["scalar_value"]))

        def either(name: str) -> pa.Array:
            return pc.if_else(histogram, field[name], pc.if_else(scalar, field["scalar_value"], None))

        count = pc.sum(pc.if_else(histogram, pc.fill_null(field["histogram_count"], 0), pc.cast(scalar, pa.int64())))
        extremes = [pc.min(either("histogram_min")).as_py(), pc.max(either("histogram_max")).as_py()]
        return cls(count.as_py() or 0, pc.sum(either("histogram_sum")).as_py(), *extremes)

    @classmethod
    def combined(cls, counts: pa.Array, sums: pa.Array, mins: pa.Array, maxs: pa.Array) -> _Totals:
        """The totals of several partial totals, given as arrays of their fields."""
        return cls(pc.sum(counts).as_py() or 0, pc.sum(sums).as_py(), pc.min(mins).as_py(), pc.max(maxs).as_py())

    def state(self) -> list[pa.Scalar]:
        return [
            pa.scalar(self.count, pa.int64()),
            *(pa.scalar(v, pa.float64()) for v in (self.sum, self.min, self.max)),
        ]

    def plus(self, other: _Totals) -> _Totals:
        return _Totals.combined(*(pa.array([a, b]) for a, b in zip(self.state(), other.state(), strict=True)))


def _masses(rows: list[Row], totals: _Totals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows as (low, high, count) pieces of one distribution: uniform between low and high, or a point.

    Pieces are clipped to the group's smallest and largest observation (``metric_min``/``metric_max``), not to
    each row's: then merging rows first (``metric_merge``) gives the same distribution.
    """
    low_end, high_end = totals.min, totals.max
    pieces: list[tuple[float, float, int]] = []
    for row in rows:
        if row["exp_histogram_scale"] is not None:
            pieces += _exponential_buckets(row)
        elif row["histogram_bucket_counts"] is not None:
            pieces += _explicit_buckets(row, low_end, high_end)
        elif not _is_histogram(row) and row["scalar_value"] is not None:
            pieces.append((row["scalar_value"], row["scalar_value"], 1))
    if not pieces:
        return np.empty(0), np.empty(0), np.empty(0)
    low, high, count = (np.asarray(column, dtype=np.float64) for column in zip(*pieces, strict=True))
    bottom = low_end if low_end is not None else -np.inf
    top = high_end if high_end is not None else np.inf
    return np.clip(low, bottom, top), np.clip(high, bottom, top), count


def _quantile(rows: list[Row], totals: _Totals, p: float) -> float | None:
    """The ``p``-quantile of the distribution ``rows`` describe (see the module docstring), or None."""
    low, high, count = _masses(rows, totals)
    if not count.sum():
        return None
    xs = np.unique(np.concatenate([low, high]))
    # The cumulative count at each breakpoint, as sums of non-negative terms (a running density would cancel
    # catastrophically next to exponential buckets a billion wide): whole pieces that end at or before it ...
    order = np.argsort(high, kind="stable")
    whole = np.concatenate([[0.0], np.cumsum(count[order])])
    at = whole[np.searchsorted(high[order], xs, "right")]
    # ... plus the share of each piece a breakpoint falls strictly inside (between two bounds: none).
    first, stop = np.searchsorted(xs, low, "right"), np.searchsorted(xs, high, "left")
    inside = np.maximum(stop - first, 0)
    piece = np.repeat(np.arange(len(low)), inside)
    point = np.arange(inside.sum()) - np.repeat(np.cumsum(inside) - inside, inside) + first[piece]
    np.add.at(at, point, count[piece] * (xs[point] - low[piece]) / (high[piece] - low[piece]))
    jump = np.zeros(len(xs))
    np.add.at(jump, np.searchsorted(xs, low[low == high]), count[low == high])
    # The count just before and at each breakpoint, interleaved; linear in between.
    steps = np.empty(2 * len(xs))
    steps[0::2], steps[1::2] = at - jump, at
    steps = np.maximum.accumulate(steps)
    rank = p * count.sum()
    k = int(np.searchsorted(steps, rank, "left"))
    if k >= len(steps):
        return float(xs[-1])
    j = k // 2
    if k % 2 or j == 0:
        return float(xs[j])
    share = (rank - steps[k - 1]) / (steps[k] - steps[k - 1])
    return float(xs[j - 1] + share * (xs[j] - xs[j - 1]))


def _amount(row: Row) -> float | None:
    return row["histogram_count"] if _is_histogram(row) else row["scalar_value"]


def _temporality(row: Row) -> str:
    if not _is_histogram(row) and (row["metric_type"] or "").lower() == "gauge":
        return "gauge"
    return "cumulative" if "cumulative" in (row["aggregation_temporality"] or "").lower() else "delta"


def _increase_and_window(rows: list[Row], times: list[int]) -> tuple[float | None, int | None]:
    """How much the counter grew, and over how many microseconds (see the module docstring)."""
    timed = sorted(
        ((t, row) for t, row in zip(times, rows, strict=True) if t is not None and _amount(row) is not None),
        key=lambda pair: pair[0],
    )
    if not timed:
        return None, None
    increase, previous, first, last = 0.0, {}, {}, {}
    window_start = timed[0][0]
    for t, row in timed:
        kind, amount = _temporality(row), float(_amount(row))  # type: ignore[arg-type]
        if kind == "delta":
            increase += amount
            start = row["start_timestamp"]
            window_start = min(window_start, _micros(start) if start is not None else t)
        elif kind == "cumulative" and "cumulative" in previous:
            before = previous["cumulative"]
            increase += amount - before if amount >= before else amount
        first.setdefault(kind, amount)
        last[kind], previous[kind] = amount, amount
    if "gauge" in first:
        increase += last["gauge"] - first["gauge"]
    return increase, timed[-1][0] - window_start


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _increase(rows: list[Row], _totals: _Totals, times: list[int]) -> float | None:
    return _increase_and_window(rows, times)[0]


def _rate(rows: list[Row], _totals: _Totals, times: list[int]) -> float | None:
    increase, window = _increase_and_window(rows, times)
    return increase / (window / 1e6) if increase is not None and window else None


def _merge_explicit(rows: list[Row]) -> Row:
    bounds = rows[0]["histogram_explicit_bounds"]
    if any(row["histogram_explicit_bounds"] != bounds for row in rows):
        msg = "metric_merge: explicit histograms with different bucket bounds cannot be merged without loss"
        raise ValueError(msg)
    width = max(len(row["histogram_bucket_counts"] or []) for row in rows)
    counts = np.zeros(width, dtype=np.int64)
    for row in rows:
        counts[: len(row["histogram_bucket_counts"] or [])] += row["histogram_bucket_counts"] or []
    return {"histogram_bucket_counts": counts.tolist(), "histogram_explicit_bounds": bounds}


def _merge_exponential(rows: list[Row]) -> Row:
    scale = min(row["exp_histogram_scale"] for row in rows)
    merged: Row = {
        "exp_histogram_scale": scale,
        "exp_histogram_zero_count": sum(row["exp_histogram_zero_count"] or 0 for row in rows),
        "exp_histogram_zero_threshold": max((row["exp_histogram_zero_threshold"] or 0.0) for row in rows),
    }
    for key in ("positive", "negative"):
        buckets: dict[int, int] = {}
        for row in rows:
            shift = row["exp_histogram_scale"] - scale  # downscaling by one halves the index, rounding down
            offset = row[f"exp_histogram_{key}_bucket_counts_offset"] or 0
            for k, count in enumerate(row[f"exp_histogram_{key}_bucket_counts"] or []):
                index = (offset + k) >> shift
                buckets[index] = buckets.get(index, 0) + count
        low = min(buckets, default=0)
        counts = [0] * (max(buckets, default=-1) - low + 1)
        for index, count in buckets.items():
            counts[index - low] += count
        merged[f"exp_histogram_{key}_bucket_counts"] = counts
        merged[f"exp_histogram_{key}_bucket_counts_offset"] = low
    return merged


def _merge(rows: list[Row], totals: _Totals, _: None) -> Row | None:
    """One ``value`` with the rows' totals (and buckets), so metric_* of it equals metric_* of the rows."""
    rows = [row for row in rows if _is_histogram(row) or row["scalar_value"] is not None]
    if not rows:
        return None
    starts = [row["start_timestamp"] for row in rows if row["start_timestamp"] is not None]
    merged: Row = dict.fromkeys(VALUE_TYPE.names) | {
        "metric_type": rows[0]["metric_type"],
        "aggregation_temporality": rows[0]["aggregation_temporality"],
        "start_timestamp": min(starts) if starts else None,
    }
    histograms = [row for row in rows if _is_histogram(row)]
    if not histograms:
        return merged | {"scalar_value": totals.sum}
    exponential = [row for row in histograms if row["exp_histogram_scale"] is not None]
    explicit = [row for row in histograms if row["histogram_bucket_counts"] is not None]
    if len(histograms) < len(rows) or (exponential and explicit):
        msg = "metric_merge: only histograms of one kind (explicit or exponential) merge without loss"
        raise ValueError(msg)
    if exponential:
        merged.update(_merge_exponential(exponential))
    elif explicit:
        merged.update(_merge_explicit(explicit))
    return merged | {
        "histogram_count": totals.count,
        "histogram_sum": totals.sum,
        "histogram_min": totals.min,
        "histogram_max": totals.max,
    }


class _Summary(Accumulator):
    """``metric_count``/``sum``/``min``/``max``/``avg``: the state is four numbers, the evaluation one of them."""

    def __init__(self, pick: Callable[[_Totals], Any], output: pa.DataType) -> None:
        self._pick, self._output = pick, output
        self._totals = _Totals()

    def update(self, values: pa.Array) -> None:
        self._totals = self._totals.plus(_Totals.of(values.cast(VALUE_TYPE)))

    def merge(self, states: list[pa.Array]) -> None:
        self._totals = self._totals.plus(_Totals.combined(*states))

    def state(self) -> list[pa.Scalar]:
        return self._totals.state()

    def evaluate(self) -> pa.Scalar:
        return pa.scalar(self._pick(self._totals), self._output)


def _average(totals: _Totals) -> float | None:
    return totals.sum / totals.count if totals.sum is not None and totals.count else None


_SUMMARIES: list[tuple[str, Callable[[_Totals], Any], pa.DataType]] = [
    ("metric_count", lambda t: t.count, pa.int64()),
    ("metric_sum", lambda t: t.sum, pa.float64()),
    ("metric_min", lambda t: t.min, pa.float64()),
    ("metric_max", lambda t: t.max, pa.float64()),
    ("metric_avg", _average, pa.float64()),
]


class _Rows(Accumulator):
    """Collects the group's ``value`` rows (and timestamps, or ``p``); ``evaluate`` applies one function.

    The state is the rows themselves: DataFusion aggregates in two phases, and the final phase sees only
    states, never the arguments, so even the constant ``p`` of ``metric_quantile`` travels in the state.
    """

    def __init__(self, name: str, compute: Callable[..., Any], shape: str, output: pa.DataType) -> None:
        self._name, self._compute, self._shape, self._output = name, compute, shape, output
        self._values: list[pa.Array] = []
        self._times: list[pa.Array] = []
        self._p: float | None = None

    def update(self, *arrays: pa.Array) -> None:
        if self._shape == "p":
            p_values, values = arrays
            self._set_p(pc.min(p_values).as_py(), pc.max(p_values).as_py())
        else:
            values = arrays[0]
        self._values.append(values.cast(VALUE_TYPE))
        if self._shape == "time":
            self._times.append(arrays[1].cast(_TS))

    def _set_p(self, low: float | None, high: float | None) -> None:
        if low is None:
            return
        if low != high or (self._p is not None and low != self._p):
            msg = f"{self._name}: `p` must be the same for every row, got {low!r} and {high!r}"
            raise ValueError(msg)
        if not 0 <= low <= 1:
            msg = f"{self._name}: `p` must be between 0 and 1, got {low!r}"
            raise ValueError(msg)
        self._p = low

    def merge(self, states: list[pa.Array]) -> None:
        self._values.append(states[0].flatten().cast(VALUE_TYPE))
        if self._shape == "time":
            self._times.append(states[1].flatten().cast(_TS))
        if self._shape == "p":
            self._set_p(pc.min(states[1]).as_py(), pc.max(states[1]).as_py())

    def state(self) -> list[pa.Scalar]:
        state = [_as_list(self._values, VALUE_TYPE)]
        if self._shape == "time":
            state.append(_as_list(self._times, _TS))
        if self._shape == "p":
            state.append(pa.scalar(self._p, pa.float64()))
        return state

    def evaluate(self) -> pa.Scalar:
        values = pa.concat_arrays(self._values) if self._values else pa.array([], VALUE_TYPE)
        valid = pc.is_valid(values)
        rows = values.filter(valid).to_pylist()
        if self._shape == "p" and self._p is None:
            return pa.scalar(None, self._output)
        argument: Any = self._p
        if self._shape == "time":
            argument = pa.concat_arrays(self._times).filter(valid).cast(pa.int64()).to_pylist()
        return pa.scalar(self._compute(rows, _Totals.of(values), argument), self._output)


def _as_list(parts: list[pa.Array], type_: pa.DataType) -> pa.Scalar:
    """One list scalar holding every element of ``parts`` (a state DataFusion can carry between phases)."""
    items = pa.concat_arrays(parts) if parts else pa.array([], type_)
    return pa.ListArray.from_arrays(pa.array([0, len(items)], pa.int32()), items)[0]


_ROWS: list[tuple[str, Callable[..., Any], str, pa.DataType]] = [
    # (name, compute(rows, totals, argument), argument shape, return type)
    ("metric_quantile", _quantile, "p", pa.float64()),
    ("metric_increase", _increase, "time", pa.float64()),
    ("metric_rate", _rate, "time", pa.float64()),
    ("metric_merge", _merge, "value", VALUE_TYPE),
]
_INPUTS = {"p": [pa.float64(), VALUE_TYPE], "value": [VALUE_TYPE], "time": [VALUE_TYPE, _TS]}
_STATES = {
    "p": [pa.list_(VALUE_TYPE), pa.float64()],
    "value": [pa.list_(VALUE_TYPE)],
    "time": [pa.list_(VALUE_TYPE), pa.list_(_TS)],
}
_SUMMARY_STATE = [pa.int64(), pa.float64(), pa.float64(), pa.float64()]
METRIC_FUNCTIONS = frozenset(name for name, *_ in [*_SUMMARIES, *_ROWS])
"""The names of the ``metric_*`` functions, whose ``value`` argument the dialect shim is to splice."""


def register_metric_udfs(ctx: SessionContext) -> None:
    """Register the ``metric_*`` aggregate functions on ``ctx``."""
    for name, pick, output in _SUMMARIES:
        summary = functools.partial(_Summary, pick, output)
        ctx.register_udaf(udaf(summary, [VALUE_TYPE], output, _SUMMARY_STATE, "immutable", name))
    for name, compute, shape, output in _ROWS:
        rows = functools.partial(_Rows, name, compute, shape, output)
        ctx.register_udaf(udaf(rows, _INPUTS[shape], output, _STATES[shape], "immutable", name))
