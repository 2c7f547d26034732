"""read_logfire_pandas: every dtype backend keeps microsecond UTC timestamps and whole numbers; structs with pyarrow."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import logfire_io
import pandas as pd
from logfire_io import LogfireQueryClient
from logfire_io._json import decode_json_array
from logfire_io.pandas import arrow_to_pandas
from logfire_io.server import LocalLogfire
from tests.strategies import json_objects

SQL = "SELECT start_timestamp, level, is_exception, duration, span_name, attributes FROM records ORDER BY span_id"


@pytest.mark.parametrize("backend", [None, "numpy_nullable", "pyarrow"])
def test_backends(server: LocalLogfire, backend: str | None) -> None:
    frame = logfire_io.read_logfire_pandas(
        SQL,
        limit=300,
        read_token=server.read_token,
        base_url=server.base_url,
        dtype_backend=backend,  # type: ignore[arg-type]
    )
    assert len(frame) == 300
    timestamps = frame["start_timestamp"]
    if backend == "pyarrow":
        assert timestamps.dtype == pd.ArrowDtype(pa.timestamp("us", "UTC"))
        assert pa.types.is_struct(frame["attributes"].dtype.pyarrow_dtype)
    else:
        assert str(timestamps.dtype) == "datetime64[us, UTC]"
        assert isinstance(frame["attributes"].dropna().iloc[0], dict)
    if backend == "numpy_nullable":
        assert str(frame["level"].dtype) == "Int32"
        assert str(frame["is_exception"].dtype) == "boolean"


def test_equals_client_result_converted_by_hand(server: LocalLogfire) -> None:
    with LogfireQueryClient(server.read_token, base_url=server.base_url) as client:
        raw = client.query_arrow(SQL, limit=300)
    ours = logfire_io.read_logfire_pandas(
        SQL,
        limit=300,
        json_columns=None,
        read_token=server.read_token,
        base_url=server.base_url,
        dtype_backend="pyarrow",
    )
    pd.testing.assert_frame_equal(ours, raw.to_pandas(types_mapper=pd.ArrowDtype))


def test_bad_backend() -> None:
    with pytest.raises(logfire_io.ConfigurationError, match="`dtype_backend`"):
        logfire_io.read_logfire_pandas("SELECT 1", read_token="t", base_url="http://127.0.0.1:9", dtype_backend="arrow")  # type: ignore[arg-type]


BACKENDS = [None, "numpy_nullable", "pyarrow"]


def _plain(value: Any) -> Any:
    """A pandas cell as plain Python: arrays to lists, NumPy scalars to Python ones, every kind of missing to None.

    Types are kept: a float stays a float (``404.0`` does not become ``404``), so integers can be checked.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.ndarray | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _arrow_plain(value: Any) -> Any:
    """An Arrow value (``to_pylist``) in the same plain form, NaN as None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_arrow_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _arrow_plain(v) for k, v in value.items()}
    return value


def _same_values(frame: pd.DataFrame, table: pa.Table) -> None:
    """Every cell of ``frame`` is the Arrow value, with the same Python type (no int turned float)."""
    assert list(frame.columns) == table.column_names
    for index, name in enumerate(table.column_names):
        expected = [_arrow_plain(v) for v in table.column(index).to_pylist()]
        got = [_plain(v) for v in frame.iloc[:, index]]
        assert got == expected, name
        for g, e in zip(got, expected, strict=True):
            assert _types(g) == _types(e), (name, g, e)


def _types(value: Any) -> Any:
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return datetime if isinstance(value, datetime) else type(value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_13_whole_numbers_stay_integers(server: LocalLogfire, backend: str | None) -> None:
    """Issue 13: with the default backend, ``404`` inside decoded attributes came back as ``404.0``."""
    sql = "SELECT span_id, http_response_status_code, is_exception, attributes FROM records ORDER BY span_id"
    options: dict[str, Any] = {"limit": 500, "read_token": server.read_token, "base_url": server.base_url}
    table = logfire_io.read_logfire_arrow(sql, **options)
    frame = logfire_io.read_logfire_pandas(sql, dtype_backend=backend, **options)  # type: ignore[arg-type]
    codes = [a["http.response.status_code"] for a in table.column("attributes").to_pylist() if a]
    assert None in codes  # the shape that broke: whole numbers beside missing values
    assert 404 in codes
    _same_values(frame, table)
    if backend is None:
        assert str(frame["http_response_status_code"].dtype) == "Int32"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(documents=[{"\x00": None, "a": {"b\x00": 1}}], backend=None)  # pyarrow cut the key "\x00" to ""
@given(st.lists(st.one_of(st.none(), json_objects), min_size=1, max_size=8), st.sampled_from(BACKENDS))
def test_decoded_json_converts_exactly(documents: list[dict | None], backend: str | None) -> None:
    texts = pa.array([None if d is None else orjson.dumps(d).decode() for d in documents], pa.string())
    decoded = decode_json_array(texts)
    table = pa.table({"attributes": decoded, "n": pa.array([None if d is None else len(d) for d in documents])})
    _same_values(arrow_to_pandas(table, backend, pd), table)  # type: ignore[arg-type]
