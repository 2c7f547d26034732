"""Small tables of records for tests that need exact rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from logfire_io.schema import RECORDS_SCHEMA


def make_records(start_timestamps: Sequence[datetime], **columns: Sequence[Any]) -> pa.Table:
    """A records table of Logfire's full schema, one row per timestamp.

    NOT NULL columns get plausible values unless given; the other columns are NULL unless given.
    """
    n = len(start_timestamps)
    values: dict[str, Sequence[Any]] = {
        "start_timestamp": start_timestamps,
        "end_timestamp": start_timestamps,
        "trace_id": [f"{i:032x}" for i in range(n)],
        "span_id": [f"{i:016x}" for i in range(n)],
        "kind": ["log"] * n,
        "level": [9] * n,
        "span_name": ["row {i}"] * n,
        "message": [f"row {i}" for i in range(n)],
        "service_name": ["svc"] * n,
        "created_at": start_timestamps,
        "day": [t.date() for t in start_timestamps],
        "project_id": ["p"] * n,
    } | columns
    unknown = set(values) - set(RECORDS_SCHEMA.names)
    assert not unknown, f"not columns of records: {unknown}"
    arrays = [pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type) for f in RECORDS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=RECORDS_SCHEMA)
