"""Issue 13: one error family. Random arguments go to every public function; only ``LogfireIOError`` comes out.

An argument of the wrong type may also raise ``TypeError``, as Python itself does (documented in
:mod:`logfire_io._exceptions`); a value of the right type, however absurd, always gives a ``LogfireIOError``
whose message says what to do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logfire_io
import polars as pl
from logfire_io import ConfigurationError, LogfireIOError, QueryExecutionError
from logfire_io.server import LocalLogfire

END = datetime(2026, 1, 1, tzinfo=UTC)
DEEP = "SELECT " + "(" * 3_000 + "1" + ")" * 3_000

SQLS = st.sampled_from(
    [
        "SELECT 1 AS x",
        "SELECT span_id, attributes FROM records",
        "SELECT count(*) AS n FROM records",
        "SELECT level, count(*) FROM records GROUP BY level ORDER BY 2 DESC",
        "SELECT * FROM records_all ORDER BY start_timestamp DESC",
        "SELECT nope FROM records",
        "SELEC * FRM",
        "",
        "   ",
        "SELECT 1; SELECT 2",
        DEEP,
    ]
)
# Datetimes stay within 1970-2100 here: the extremes (datetime.min/max, offsets past them) are the window
# checks' own tests.
DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([None, UTC])
) | st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 1, 2)).map(
    lambda d: d.replace(tzinfo=timezone(timedelta(hours=-5)))
)
RIGHT: dict[str, st.SearchStrategy[Any]] = {
    "sql": SQLS | st.text(max_size=20),
    "sql_or_table": st.sampled_from(["records", "metrics", "RECORDS_ALL"]) | SQLS | st.text(max_size=10),
    "min_timestamp": st.none() | DATETIMES,
    "max_timestamp": st.none() | DATETIMES,
    "limit": st.none() | st.integers(-3, 12_000) | st.sampled_from([10**12 + 1, 2**63, 2**70]),
    # Small counts only: a valid count of thousands would really send thousands of requests.
    "slices": st.none()
    | st.integers(-3, 6)
    | st.sampled_from([10**6, 2**70])
    | st.sampled_from([timedelta(0), -timedelta(hours=1), timedelta(microseconds=1), timedelta(days=10**5)]),
    "max_concurrency": st.none() | st.integers(-3, 8) | st.sampled_from([65, 2**70]),
    "json_columns": st.sampled_from(["auto", None, [], ["attributes"], ["nope"], "attributes"]),
    "progress": st.none() | st.booleans(),
    "timezone": st.none() | st.sampled_from(["UTC", "Europe/Paris", "Mars/Olympus", ""]),
    "environment": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=2),
    "dtype_backend": st.sampled_from([None, "numpy_nullable", "pyarrow", "polars", ""]),
    "timeout": st.sampled_from([30.0, 5, 1e-9, 0, -1, float("nan"), float("inf")]),
    "api_version": st.sampled_from(["auto", "v1", "v2", "v3", ""]),
    "retries": st.integers(-2, 1),
    "max_response_bytes": st.sampled_from([1, 100, 10**9, 0, -1, 2**70]),
    "max_compression_ratio": st.sampled_from([1, 1.5, 1_000, 0, -1, float("nan"), float("inf")]),
    "low": DATETIMES,
    "high": DATETIMES,
    "backoff": st.sampled_from([0.0, 0.01, -1.0, float("nan")]),
    "max_backoff": st.sampled_from([0.0, 0.1, -1.0, float("inf")]),
    "max_retry_after": st.sampled_from([0.0, 1.0, -1.0]),
}
WRONG = (
    st.binary(max_size=3)
    | st.builds(object)
    | st.complex_numbers(max_magnitude=10)
    | st.dictionaries(st.integers(), st.integers(), max_size=2)
    | st.sets(st.integers(), max_size=2)
    | st.floats(allow_nan=True)
    | st.integers(-(2**80), 2**80)
    | st.text(max_size=4)
)


@pytest.fixture(scope="module")
def small() -> Iterator[LocalLogfire]:
    with LocalLogfire(demo_rows=300, demo_end=END, seed=3, workers=1) as srv:
        yield srv


def _clients(method: str, asynchronous: bool) -> Callable[..., Any]:
    """Call ``method`` on a client made from the client's own arguments among ``kwargs``."""
    own = set(inspect.signature(logfire_io.LogfireQueryClient).parameters) - {"read_token", "base_url"}

    def call(srv: LocalLogfire, sql: Any, **kwargs: Any) -> Any:
        config = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
        config.setdefault("retries", 0)
        if not asynchronous:
            with logfire_io.LogfireQueryClient(srv.read_token, srv.base_url, **config) as client:
                result = getattr(client, method)(sql, **kwargs)
                return list(result) if method == "iter_arrow_batches" else result

        async def run() -> Any:
            async with logfire_io.AsyncLogfireQueryClient(srv.read_token, srv.base_url, **config) as client:
                if method == "iter_arrow_batches":
                    return [batch async for batch in client.iter_arrow_batches(sql, **kwargs)]
                return await getattr(client, method)(sql, **kwargs)

        return anyio.run(run)

    return call


def _reader(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(srv: LocalLogfire, sql: Any, **kwargs: Any) -> Any:
        result = function(sql, read_token=srv.read_token, base_url=srv.base_url, **kwargs)
        return result.collect() if isinstance(result, pl.LazyFrame) else result  # scan_logfire's errors as they are

    return call


QUERY_ARGUMENTS = ["min_timestamp", "max_timestamp", "limit", "timezone", "environment"]
CLIENT_ARGUMENTS = ["timeout", "api_version", "retries", "max_response_bytes", "max_compression_ratio"]
READER_ARGUMENTS = [
    *("min_timestamp", "max_timestamp", "limit", "slices", "max_concurrency", "json_columns", "progress"),
    *("timezone", "environment"),
]
FUNCTIONS: dict[str, tuple[Callable[..., Any], list[str]]] = {
    "read_logfire": (_reader(logfire_io.read_logfire), READER_ARGUMENTS),
    "read_logfire_arrow": (_reader(logfire_io.read_logfire_arrow), READER_ARGUMENTS),
    "read_logfire_pandas": (_reader(logfire_io.read_logfire_pandas), [*READER_ARGUMENTS, "dtype_backend"]),
    "scan_logfire": (_reader(logfire_io.scan_logfire), [a for a in READER_ARGUMENTS if a != "limit"]),
    **{
        f"{'async ' if is_async else ''}{method}": (
            _clients(method, is_async),
            [*QUERY_ARGUMENTS, *CLIENT_ARGUMENTS],
        )
        for method in ("query_json", "query_json_rows", "query_arrow", "query_csv", "iter_arrow_batches")
        for is_async in (False, True)
    },
}


def _arguments(names: list[str], *, wrong: bool) -> st.SearchStrategy[dict[str, Any]]:
    values = {name: (RIGHT[name] | WRONG) if wrong else RIGHT[name] for name in names}
    return st.fixed_dictionaries({}, optional=values)


def _check(call: Callable[[], Any], *, wrong: bool) -> None:
    try:
        call()
    except LogfireIOError as exc:
        assert str(exc).strip(), "an error without a message"
    except TypeError:
        if not wrong:
            raise


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("wrong", [False, True], ids=["right types", "any types"])
def test_13_only_logfire_io_errors_escape(small: LocalLogfire, name: str, wrong: bool) -> None:
    function, names = FUNCTIONS[name]
    sql_name = "sql_or_table" if name == "scan_logfire" else "sql"
    # the type of scan_logfire's sql_or_table is checked by polars.py and tested with it
    sqls = (RIGHT[sql_name] | WRONG) if wrong and name != "scan_logfire" else RIGHT[sql_name]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sql=sqls, kwargs=_arguments(names, wrong=wrong))
    def prop(sql: Any, kwargs: dict[str, Any]) -> None:
        _check(lambda: function(small, sql, **kwargs), wrong=wrong)

    prop()


@pytest.mark.parametrize("wrong", [False, True], ids=["right types", "any types"])
def test_13_pure_helpers_raise_only_logfire_io_errors(wrong: bool) -> None:
    @settings(max_examples=60, deadline=None)
    @given(
        plan=_arguments(["slices"], wrong=wrong).flatmap(
            lambda slices: st.fixed_dictionaries({"low": DATETIMES, "high": DATETIMES}).map(slices.__or__)
        ),
        retry=_arguments(["retries", "backoff", "max_backoff", "max_retry_after"], wrong=wrong),
    )
    def prop(plan: dict[str, Any], retry: dict[str, Any]) -> None:
        _check(lambda: logfire_io.plan_slices(plan["low"], plan["high"], plan.get("slices")), wrong=wrong)
        _check(lambda: logfire_io.Retry(**retry).delay(logfire_io.TransportError("x"), 0), wrong=wrong)

    prop()


def test_13_oversize_limit_is_a_configuration_error(small: LocalLogfire) -> None:
    for limit in (2**63, 2**70):
        with pytest.raises(ConfigurationError, match="`limit` must be a positive integer"):
            logfire_io.read_logfire(
                "SELECT span_id FROM records", read_token=small.read_token, base_url=small.base_url, limit=limit
            )


def test_13_sql_too_deep_to_analyse_runs_unsplit(small: LocalLogfire) -> None:
    from logfire_io._sql import analyze

    assert analyze(DEEP).reason == "it is nested too deeply to analyse"
    before = len(small.queries)
    with pytest.raises((QueryExecutionError, logfire_io.UnexpectedResponseError)):  # the local engine's own limit
        logfire_io.read_logfire(DEEP, read_token=small.read_token, base_url=small.base_url)
    assert [q.sql for q in small.queries[before:]] == [DEEP]  # sent once, as written
    with pytest.raises(ConfigurationError, match="nested too deeply to analyse"):
        logfire_io.read_logfire(DEEP, read_token=small.read_token, base_url=small.base_url, slices=2)


def test_13_plan_of_non_datetimes() -> None:
    with pytest.raises(ConfigurationError, match="must be a datetime"):
        logfire_io.plan_slices(b"", object(), 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="both ends"):
        logfire_io.plan_slices(None, datetime(2026, 1, 1), 2)  # type: ignore[arg-type]
