"""Logfire for pandas: ``read_logfire_pandas``. Needs the ``pandas`` extra (``pip install 'logfire-io[pandas]'``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from logfire_io._exceptions import ConfigurationError
from logfire_io._optional import optional_import
from logfire_io._read import read_logfire_arrow

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    import pandas as pd
    from logfire_io._client import LogfireQueryClient
    from logfire_io._json import JSONColumns

__all__ = ["read_logfire_pandas"]

DtypeBackend = Literal["numpy_nullable", "pyarrow"]


def _import_pandas(needed_by: str = "read_logfire_pandas", extra: str = "pandas") -> Any:
    return optional_import("pandas", needed_by=needed_by, extra=extra)


def read_logfire_pandas(
    sql: str,
    *,
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    limit: int | None = None,
    slices: int | timedelta | None = None,
    max_concurrency: int | None = None,
    json_columns: JSONColumns = "auto",
    progress: bool | None = None,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
    client: LogfireQueryClient | None = None,
    dtype_backend: DtypeBackend | None = None,
) -> pd.DataFrame:
    """Read a Logfire query into a pandas DataFrame.

    Timestamps stay timezone-aware UTC at microsecond precision (``datetime64[us, UTC]``) with every backend.

    Parameters
    ----------
    {read_parameters}
    dtype_backend
        None: NumPy dtypes, structs and lists as Python objects; integer columns with NULLs as pandas' nullable
        ``Int64`` (and its kin) rather than floats. ``"numpy_nullable"``: pandas' nullable
        ``Int64``/``boolean``/``string`` dtypes. ``"pyarrow"``: ``pd.ArrowDtype`` columns, zero-copy, structs kept
        as Arrow structs (the fastest for JSON columns). With every backend, whole numbers stay integers, also
        inside decoded JSON (``404``, never ``404.0``; None where a value is missing).

    Returns
    -------
    pandas.DataFrame
        The result, converted from Arrow at the edge.

    Raises
    ------
    {reader_raises}
    ImportError
        pandas is not installed (``pip install 'logfire-io[pandas]'``).

    Examples
    --------
    >>> from logfire_io import read_logfire_pandas
    >>> frame = read_logfire_pandas("SELECT start_timestamp, span_name FROM records", limit=3)
    >>> frame.shape, str(frame["start_timestamp"].dtype)
    ((3, 2), 'datetime64[us, UTC]')
    """
    if dtype_backend not in (None, "numpy_nullable", "pyarrow"):
        msg = f"`dtype_backend` must be None, 'numpy_nullable' or 'pyarrow', got {dtype_backend!r}"
        raise ConfigurationError(msg)
    pandas = _import_pandas()
    table = read_logfire_arrow(
        sql,
        read_token=read_token,
        base_url=base_url,
        min_timestamp=min_timestamp,
        max_timestamp=max_timestamp,
        limit=limit,
        slices=slices,
        max_concurrency=max_concurrency,
        json_columns=json_columns,
        progress=progress,
        timezone=timezone,
        environment=environment,
        client=client,
    )
    return arrow_to_pandas(table, dtype_backend, pandas)


def _nullable_integers(pd_: Any) -> dict[pa.DataType, Any]:
    return {
        pa.int8(): pd_.Int8Dtype(),
        pa.int16(): pd_.Int16Dtype(),
        pa.int32(): pd_.Int32Dtype(),
        pa.int64(): pd_.Int64Dtype(),
        pa.uint8(): pd_.UInt8Dtype(),
        pa.uint16(): pd_.UInt16Dtype(),
        pa.uint32(): pd_.UInt32Dtype(),
        pa.uint64(): pd_.UInt64Dtype(),
    }


def arrow_to_pandas(table: pa.Table, dtype_backend: DtypeBackend | None, pandas: Any) -> pd.DataFrame:
    """Convert at the edge, keeping microsecond UTC timestamps and whole numbers whatever the backend.

    pyarrow turns an integer column with nulls into float64 (``404`` becomes ``404.0``), also inside the structs
    and lists of decoded JSON. Inside those, integers with nulls become Python ints and None instead
    (``integer_object_nulls``); a column of integers with nulls becomes pandas' nullable integer dtype.
    """
    pd_ = pandas
    if dtype_backend == "pyarrow":
        return table.to_pandas(types_mapper=pd_.ArrowDtype)  # type: ignore[attr-defined,no-any-return]
    integers = _nullable_integers(pd_)
    nullable = integers | {
        pa.bool_(): pd_.BooleanDtype(),
        pa.float32(): pd_.Float32Dtype(),
        pa.float64(): pd_.Float64Dtype(),
        pa.string(): pd_.StringDtype(),
    }
    frame = table.to_pandas(
        types_mapper=nullable.get if dtype_backend == "numpy_nullable" else None,
        integer_object_nulls=True,
        coerce_temporal_nanoseconds=False,
    )
    for index, column in enumerate(table.columns):
        if dtype_backend is None and pa.types.is_integer(column.type) and column.null_count:
            frame.isetitem(index, column.to_pandas(types_mapper=integers.get))
        elif _has_nul_field_name(column.type):  # pyarrow cuts such names at the NUL when it builds dicts
            frame.isetitem(index, pd_.Series(column.to_pylist(), index=frame.index, dtype=object))
    return frame  # type: ignore[no-any-return]


def _has_nul_field_name(type_: pa.DataType) -> bool:
    """Whether a struct inside ``type_`` has a field name with a NUL character (a JSON key may)."""
    if pa.types.is_struct(type_):
        return any("\x00" in field.name or _has_nul_field_name(field.type) for field in type_)
    return pa.types.is_list(type_) and _has_nul_field_name(type_.value_type)
