"""Issue 11: Logfire's ``metric_*`` functions, checked over loopback against oracles written from their definitions.

The server holds a metrics table of about a hundred groups (``service_instance_id``): explicit histograms with
shared and with differing bounds, exponential histograms at several scales with negative and zero buckets,
gauges, delta sums and cumulative sums with resets. Each oracle below computes the documented answer another
way (bisection on the cumulative count; polars over the flat columns; numpy over the series) from the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polars as pl
from logfire_io import LogfireQueryClient
from logfire_io._exceptions import QueryHTTPError
from logfire_io.schema import METRICS_SCHEMA
from logfire_io.server import LocalLogfire
from logfire_io.server.metric_udfs import VALUE_SQL, value_sql
from tests.conftest import logfire_queries

T0 = datetime(2026, 2, 1, tzinfo=UTC)
BOUNDS = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]
KINDS = ["explicit", "explicit_mixed", "exponential", "gauge", "delta_sum", "cumulative_sum"]


def _histogram_extremes(rng: np.random.Generator, low: float, high: float) -> tuple[float | None, float | None]:
    """min and max around the occupied range: sometimes unknown, sometimes inside it (clipping buckets)."""
    roll = rng.random()
    if roll < 0.15:
        return None, None
    span = high - low
    if roll < 0.5:
        return low + rng.random() * span * 0.3, high - rng.random() * span * 0.3
    return low, high


def _explicit_row(rng: np.random.Generator, bounds: list[float]) -> dict[str, Any]:
    counts = rng.poisson(rng.uniform(0.2, 6), size=len(bounds) + 1)
    counts[rng.integers(0, len(counts))] += 1
    occupied = np.flatnonzero(counts)
    edges = [bounds[0] / 2, *bounds, bounds[-1] * 2]
    low, high = _histogram_extremes(rng, edges[occupied[0]], edges[occupied[-1] + 1])
    return {
        "histogram_bucket_counts": counts.tolist(),
        "histogram_explicit_bounds": bounds,
        "histogram_count": int(counts.sum()),
        "histogram_sum": float(counts.sum() * rng.uniform(5, 200)),
        "histogram_min": low,
        "histogram_max": high,
    }


def _exponential_row(rng: np.random.Generator, scale: int) -> dict[str, Any]:
    base = 2.0 ** (2.0**-scale)
    offset = int(rng.integers(-6, 12))
    positive = rng.poisson(rng.uniform(0.5, 5), size=int(rng.integers(1, 12)))
    positive[0] += 1
    negative = rng.poisson(1.5, size=int(rng.integers(1, 4))) if rng.random() < 0.3 else np.zeros(0, np.int64)
    negative_offset = int(rng.integers(-3, 3))
    zero = int(rng.poisson(1)) if rng.random() < 0.3 else 0
    low = -(base ** (negative_offset + len(negative))) if negative.sum() else (0.0 if zero else base**offset)
    high = base ** (offset + len(positive))
    low, high = _histogram_extremes(rng, low, high)
    return {
        "exp_histogram_scale": scale,
        "exp_histogram_zero_count": zero,
        "exp_histogram_zero_threshold": 0.0,
        "exp_histogram_positive_bucket_counts": positive.tolist(),
        "exp_histogram_positive_bucket_counts_offset": offset,
        "exp_histogram_negative_bucket_counts": negative.tolist() if negative.sum() else None,
        "exp_histogram_negative_bucket_counts_offset": negative_offset if negative.sum() else None,
        "histogram_count": int(positive.sum() + negative.sum() + zero),
        "histogram_sum": float(rng.uniform(1, 500)),
        "histogram_min": low,
        "histogram_max": high,
    }


def _group_rows(rng: np.random.Generator, kind: str, n: int) -> list[dict[str, Any]]:
    recorded = [T0 + timedelta(seconds=60 * (i + 1)) for i in range(n)]
    if kind == "explicit":
        values = [_explicit_row(rng, BOUNDS) for _ in range(n)]
    elif kind == "explicit_mixed":
        values = [_explicit_row(rng, sorted(rng.choice(BOUNDS, size=4, replace=False).tolist())) for _ in range(n)]
    elif kind == "exponential":
        scale = int(rng.integers(-1, 5))  # one scale per group, so that merging is exact
        values = [_exponential_row(rng, scale) for _ in range(n)]
    elif kind == "cumulative_sum":
        totals = np.cumsum(rng.uniform(0, 50, size=n))
        if n > 2:
            cut = int(rng.integers(1, n))
            totals[cut:] -= totals[cut - 1] - rng.uniform(0, 5)  # the counter restarts
        values = [{"scalar_value": float(v)} for v in totals]
    else:
        values = [{"scalar_value": float(v)} for v in rng.normal(40, 25, size=n)]
    metric_type = {"gauge": "gauge", "delta_sum": "sum", "cumulative_sum": "sum"}.get(kind, "histogram")
    if kind == "exponential":
        metric_type = "exponential_histogram"
    temporality = "cumulative" if kind == "cumulative_sum" else (None if kind == "gauge" else "delta")
    return [
        {
            "recorded_timestamp": t,
            "start_timestamp": T0 if temporality == "cumulative" else t - timedelta(seconds=60),
            "metric_name": kind,
            "metric_type": metric_type,
            "unit": "ms",
            "aggregation_temporality": temporality,
            **value,
        }
        for t, value in zip(recorded, values, strict=True)
    ]


def _metrics_table(seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = []
    for group in range(96):
        kind = KINDS[group % len(KINDS)]
        for row in _group_rows(rng, kind, int(rng.integers(1, 8))):
            rows.append(
                {**row, "service_name": "svc", "service_instance_id": f"g{group:02d}", "created_at": T0}
                | {"day": T0.date(), "project_id": "p"}
            )
    columns = {name: [row.get(name) for row in rows] for name in {k for row in rows for k in row}}
    table = pa.table({name: pa.array(values, METRICS_SCHEMA.field(name).type) for name, values in columns.items()})
    return table.sort_by("recorded_timestamp")  # unsorted input trips a pyarrow FutureWarning in tables.py


TABLE = _metrics_table()
ROWS: dict[str, list[dict[str, Any]]] = {}
for _row in TABLE.to_pylist():
    ROWS.setdefault(_row["service_instance_id"], []).append(_row)


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=0, metrics=TABLE, workers=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def query(metrics_server: LocalLogfire) -> Iterator[Any]:
    with LogfireQueryClient(metrics_server.read_token, base_url=metrics_server.base_url) as client:

        def run(sql: str) -> pl.DataFrame:
            table = client.query_arrow(sql.replace("{value}", VALUE_SQL), min_timestamp=T0 - timedelta(days=1))
            return pl.from_arrow(table)  # type: ignore[return-value]

        yield run


def _per_group(query: Any, aggregates: str) -> dict[str, dict[str, Any]]:
    frame = query(f"SELECT service_instance_id AS g, {aggregates} FROM metrics GROUP BY g ORDER BY g")
    return {row.pop("g"): row for row in frame.iter_rows(named=True)}


# The oracle of metric_quantile: the cumulative count F(x), summed bucket by bucket, inverted by bisection.
def _pieces(row: dict[str, Any], low: float, high: float) -> list[tuple[float, float, int]]:
    """``row``'s buckets as (low, high, count), clipped to the group's extremes ``low`` and ``high``."""
    if row["exp_histogram_scale"] is not None:
        base = 2.0 ** (2.0 ** -row["exp_histogram_scale"])
        out = [(0.0, 0.0, row["exp_histogram_zero_count"] or 0)]
        offset = row["exp_histogram_positive_bucket_counts_offset"]
        for k, c in enumerate(row["exp_histogram_positive_bucket_counts"]):
            out.append((base ** (offset + k), base ** (offset + k + 1), c))
        offset = row["exp_histogram_negative_bucket_counts_offset"]
        for k, c in enumerate(row["exp_histogram_negative_bucket_counts"] or []):
            out.append((-(base ** (offset + k + 1)), -(base ** (offset + k)), c))
    elif row["histogram_bucket_counts"] is not None:
        bounds = row["histogram_explicit_bounds"]
        edges = [max(low, -math.inf), *bounds, min(high, math.inf)]
        if math.isinf(edges[0]):
            edges[0] = bounds[0]
        if math.isinf(edges[-1]):
            edges[-1] = bounds[-1]
        out = [(edges[i], edges[i + 1], c) for i, c in enumerate(row["histogram_bucket_counts"])]
    else:
        out = [(row["scalar_value"], row["scalar_value"], 1)]
    return [(min(max(a, low), high), min(max(b, low), high), c) for a, b, c in out if c]


def _group_pieces(rows: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    extremes = [r[k] for r in rows for k in ("histogram_min", "histogram_max", "scalar_value") if r[k] is not None]
    low, high = min(extremes, default=-math.inf), max(extremes, default=math.inf)
    return [piece for row in rows for piece in _pieces(row, low, high)]


def _cdf(pieces: list[tuple[float, float, int]], x: float) -> float:
    total = 0.0
    for low, high, count in pieces:
        if x >= high:
            total += count
        elif x > low:
            total += count * (x - low) / (high - low)
    return total


def _check_quantile(rows: list[dict[str, Any]], p: float, answer: float) -> None:
    pieces = _group_pieces(rows)
    total = sum(count for _, _, count in pieces)
    rank, slack = p * total, 1e-9 * total
    lowest, highest = min(p[0] for p in pieces), max(p[1] for p in pieces)
    ulps = 1e-12 * max(abs(lowest), abs(highest), 1.0)  # bucket edges computed two ways differ in the last bits
    assert lowest - ulps <= answer <= highest + ulps
    assert _cdf(pieces, answer + ulps) >= rank - slack  # the cumulative count has reached p of the total ...
    below = answer - 1e-9 * max(1.0, abs(answer))
    assert answer <= lowest + ulps or _cdf(pieces, below) <= rank + slack  # ... and not before it
    lo, hi = lowest, highest  # bisection: the smallest x with F(x) >= rank, to compare values too
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _cdf(pieces, mid) >= rank - slack else (mid, hi)
    if _cdf(pieces, answer - 1e-6 * max(1.0, abs(answer))) < rank - slack * 10:  # away from a plateau at rank
        assert answer == pytest.approx(hi, rel=1e-6, abs=1e-9)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=st.one_of(st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]), st.floats(0, 1)))
def test_11_metric_quantile_inverts_the_cumulative_count_of_every_group(query: Any, p: float) -> None:
    answers = _per_group(query, f"metric_quantile({p!r}, {{value}}) AS q")
    assert set(answers) == set(ROWS)
    for group, rows in ROWS.items():
        _check_quantile(rows, p, answers[group]["q"])


def test_11_metric_count_sum_min_max_avg_match_the_flat_columns(query: Any) -> None:
    got = _per_group(
        query,
        "metric_count({value}) AS count, metric_sum({value}) AS sum, metric_min({value}) AS min, "
        "metric_max({value}) AS max, metric_avg({value}) AS avg",
    )
    histogram = pl.col("histogram_count").is_not_null()
    oracle = (
        pl.from_arrow(TABLE)
        .group_by(g="service_instance_id")
        .agg(
            count=pl.when(histogram).then(pl.col("histogram_count")).otherwise(1).sum(),
            sum=pl.when(histogram).then(pl.col("histogram_sum")).otherwise(pl.col("scalar_value")).sum(),
            min=pl.min_horizontal(pl.col("histogram_min").min(), pl.col("scalar_value").min()),
            max=pl.max_horizontal(pl.col("histogram_max").max(), pl.col("scalar_value").max()),
        )
        .with_columns(avg=pl.col("sum") / pl.col("count"))
    )
    for row in oracle.iter_rows(named=True):
        group = row.pop("g")
        for name, expected in row.items():
            assert got[group][name] == (expected if expected is None else pytest.approx(expected, rel=1e-9)), name


def test_11_metric_increase_and_rate_follow_counter_semantics(query: Any) -> None:
    got = _per_group(
        query,
        "metric_increase({value}, recorded_timestamp) AS inc, metric_rate({value}, recorded_timestamp) AS rate",
    )
    for group, rows in ROWS.items():
        kind = rows[0]["metric_name"]
        times = np.array([r["recorded_timestamp"].timestamp() for r in rows])
        if kind == "cumulative_sum":
            values = np.array([r["scalar_value"] for r in rows])
            steps = np.diff(values)
            increase = float(np.where(steps >= 0, steps, values[1:]).sum())
            window = times[-1] - times[0]
        elif kind == "gauge":
            increase = rows[-1]["scalar_value"] - rows[0]["scalar_value"]
            window = times[-1] - times[0]
        else:  # delta sums add values, delta histograms add observation counts, each over its own interval
            amounts = [r["scalar_value"] if r["histogram_count"] is None else r["histogram_count"] for r in rows]
            increase = float(sum(amounts))
            window = times[-1] - min(r["start_timestamp"].timestamp() for r in rows)
        assert got[group]["inc"] == pytest.approx(increase, rel=1e-9, abs=1e-9), group
        expected_rate = increase / window if window else None
        assert got[group]["rate"] == (expected_rate and pytest.approx(expected_rate, rel=1e-9)), group


def test_11_quantile_of_merged_values_equals_quantile_of_the_rows(query: Any) -> None:
    """metric_merge loses nothing for histograms with one set of bounds or one scale (each group here)."""
    merged = query(
        "SELECT g, metric_quantile(0.9, merged) AS q, metric_count(merged) AS n FROM "
        "(SELECT service_instance_id AS g, metric_merge({value}) AS merged FROM metrics "
        "WHERE metric_name IN ('explicit', 'exponential') "
        "GROUP BY g, recorded_timestamp > TIMESTAMP '2026-02-01T00:03:00Z') GROUP BY g ORDER BY g"
    )
    direct = _per_group(query, "metric_quantile(0.9, {value}) AS q, metric_count({value}) AS n")
    assert len(merged) == 2 * len(ROWS) // len(KINDS)
    for row in merged.iter_rows(named=True):
        assert row["n"] == direct[row["g"]]["n"]
        assert row["q"] == pytest.approx(direct[row["g"]]["q"], rel=1e-9)


def test_11_value_sql_takes_a_table_qualifier(query: Any) -> None:
    """In a self-join every column name is ambiguous; ``value_sql("m")`` builds ``m.value``."""
    joined = query(
        f"SELECT m.service_instance_id AS g, metric_quantile(0.5, {value_sql('m')}) AS q, "
        f"metric_count({value_sql('o')}) AS n FROM metrics m JOIN metrics o "
        "ON o.service_instance_id = m.service_instance_id AND o.recorded_timestamp = m.recorded_timestamp "
        "GROUP BY g ORDER BY g"
    )
    direct = _per_group(query, "metric_quantile(0.5, {value}) AS q, metric_count({value}) AS n")
    assert {row.pop("g"): row for row in joined.iter_rows(named=True)} == direct
    with pytest.raises(QueryHTTPError, match="Ambiguous reference"):
        query("SELECT metric_count({value}) FROM metrics m JOIN metrics o USING (service_instance_id)")


@pytest.mark.parametrize(
    ("aggregate", "message"),
    [
        ("metric_quantile(1.5, {value})", "`p` must be between 0 and 1"),
        ("metric_merge({value})", "different bucket bounds"),
    ],
)
def test_11_metric_functions_reject_what_they_cannot_answer(query: Any, aggregate: str, message: str) -> None:
    with pytest.raises(QueryHTTPError, match=message) as error:
        query(f"SELECT {aggregate} FROM metrics WHERE metric_name = 'explicit_mixed'")
    assert error.value.status_code == 400


Q36 = next(q["sql"] for q in logfire_queries() if q["id"] == "Q36")


def _v2(server: LocalLogfire, sql: str) -> pl.DataFrame:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        table = client.query_arrow(sql, min_timestamp=datetime(2020, 1, 1, tzinfo=UTC), limit=10_000)
    return pl.from_arrow(table)  # type: ignore[return-value]


def test_11_q36_metric_quantile_over_the_synthetic_histograms(server: LocalLogfire) -> None:
    """Q36 from the public queries, with ``value`` spelled out as the dialect shim is to splice it."""
    frame = _v2(server, Q36.replace("value", VALUE_SQL))
    extremes = _v2(
        server,
        "SELECT min(histogram_min) AS low, max(histogram_max) AS high FROM metrics "
        "WHERE metric_name = 'http.server.duration'",
    )
    assert frame.columns == ["x", "p95"]
    assert len(frame) > 10
    assert frame["x"].is_sorted()
    assert frame["p95"].is_between(extremes["low"][0], extremes["high"][0]).all()


def test_11_q36_runs_as_written_with_value_spliced_by_the_dialect(server: LocalLogfire) -> None:
    """``value`` (and ``m.value``) in a ``metric_*`` call is Logfire's struct: the shim splices it in."""
    assert _v2(server, Q36).equals(_v2(server, Q36.replace("value", VALUE_SQL)))
    qualified = (
        "SELECT metric_sum(m.value) AS s, metric_count(m.value) AS n FROM metrics m "
        "WHERE m.metric_name = 'http.server.duration'"
    )
    assert _v2(server, qualified)["n"].item() > 0
    assert _v2(server, qualified).equals(_v2(server, qualified.replace("m.value", "value")))


# Logfire's way before metric_quantile existed (docs "Working with histogram metrics"): unpack each exponential
# bucket into evenly spaced items between its bounds (clipped to the row's min and max), then take an
# approximate percentile of the items. Written out here in SQL, it is an independent estimate of the same p95.
UNPACKED_P95 = """
WITH buckets AS (
    SELECT recorded_timestamp, histogram_min, histogram_max,
           exp_histogram_positive_bucket_counts_offset AS first_index,
           exp_histogram_scale AS scale,
           unnest(generate_series(1, array_length(exp_histogram_positive_bucket_counts, 1)::integer)) AS k,
           exp_histogram_positive_bucket_counts AS all_counts
    FROM metrics WHERE metric_name = 'http.server.duration'
), edges AS (
    SELECT recorded_timestamp, all_counts[k] AS n,
           greatest(histogram_min, power(2.0, (first_index + k - 1) / power(2.0, scale))) AS low,
           least(histogram_max, power(2.0, (first_index + k) / power(2.0, scale))) AS high
    FROM buckets WHERE all_counts[k] > 0
), items AS (
    SELECT recorded_timestamp,
           CASE WHEN n = 1 THEN (low + high) / 2 ELSE low + i * (high - low) / (n - 1) END AS item
    FROM (SELECT *, unnest(generate_series(0, n - 1)) AS i FROM edges)
)
SELECT time_bucket('5 minutes', recorded_timestamp) AS x, approx_percentile_cont(item, 0.95) AS p95
FROM items GROUP BY x ORDER BY x
"""


def test_11_metric_quantile_agrees_with_unpacking_the_buckets_by_hand(server: LocalLogfire) -> None:
    by_hand = _v2(server, UNPACKED_P95)
    ours = _v2(server, Q36.replace("value", VALUE_SQL))
    joined = ours.join(by_hand, on="x", suffix="_by_hand")
    assert len(joined) == len(ours) > 10
    ratio = joined["p95"] / joined["p95_by_hand"]
    assert ratio.is_between(0.95, 1.05).all()  # two estimates of one quantile from the same buckets
    assert abs(ratio.median() - 1) < 0.01  # type: ignore[operator]
