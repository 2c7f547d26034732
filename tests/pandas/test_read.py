"""read_logfire_pandas: every dtype backend keeps microsecond UTC timestamps; structs with pyarrow."""

from __future__ import annotations

import pyarrow as pa
import pytest

import logfire_io
import pandas as pd
from logfire_io import LogfireQueryClient
from logfire_io.server import LocalLogfire

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
