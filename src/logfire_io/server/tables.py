"""Load the user's tables and make them fit Logfire's schema (:mod:`.store` lays them out for the workers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["TableSource", "conform", "load"]

TableSource: TypeAlias = pa.Table | str | os.PathLike[str]
"""A table given to the server: a pyarrow Table or the path of a Parquet file."""


def load(source: TableSource) -> pa.Table:
    """Read a Parquet path, or pass a Table through."""
    if isinstance(source, pa.Table):
        return source
    path = Path(source)
    if not path.exists():
        msg = f"no such file: {str(path)!r}"
        raise FileNotFoundError(msg)
    return pq.read_table(path)


def conform(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """Make ``table`` fit ``schema``, or raise one error that names every column that does not fit.

    Columns come out in the schema's order. Missing nullable columns are filled with nulls; a column of another
    type is cast when the cast is safe (``int64`` to ``int32`` without overflow, ``large_string`` to ``string``,
    a timestamp of another unit); naive timestamps are not guessed at and are an error.
    """
    problems: list[str] = []
    extra = sorted(set(table.column_names) - set(schema.names))
    if extra:
        problems.append(f"unknown columns {extra}")
    arrays: list[pa.ChunkedArray] = []
    for field in schema:
        if field.name not in table.column_names:
            if field.nullable:
                arrays.append(pa.chunked_array([pa.nulls(table.num_rows, field.type)]))
            else:
                problems.append(f"missing required column {field.name!r} ({field.type})")
            continue
        column = table.column(field.name)
        if column.type != field.type:
            if pa.types.is_timestamp(column.type) and pa.types.is_timestamp(field.type) and column.type.tz is None:
                problems.append(f"column {field.name!r} is {column.type} without a time zone; expected {field.type}")
                continue
            try:
                column = column.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                problems.append(f"column {field.name!r} is {column.type}, expected {field.type}")
                continue
        if not field.nullable and column.null_count:
            problems.append(f"column {field.name!r} has {column.null_count} nulls but is NOT NULL")
            continue
        arrays.append(column)
    if problems:
        msg = f"the {name} table does not fit Logfire's schema: " + "; ".join(problems)
        raise ValueError(msg)
    return pa.Table.from_arrays(arrays, schema=schema)
