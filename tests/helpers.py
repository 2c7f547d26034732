"""Small tables of records for tests that need exact rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from logfire_io.schema import RECORDS_SCHEMA

if TYPE_CHECKING:
    from logfire_io.server import LocalLogfire
    from logfire_io.server.app import QueryLogEntry


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


class SentQueries:
    """The queries a server receives from now on (its log entries).

    A server's log keeps only its last 1,000 queries, so comparing its length before and after stops counting once
    it is full; this follows the log from its last entry instead, and fails loudly if that entry was pushed out.
    """

    def __init__(self, server: LocalLogfire) -> None:
        self._server = server
        log = server.queries
        self._marker = log[-1] if log else None

    def __call__(self) -> list[QueryLogEntry]:
        log = self._server.queries
        if self._marker is None:
            return log
        index = next((i for i, q in enumerate(log) if q is self._marker), None)
        assert index is not None, "more queries were sent than the server's log keeps"
        return log[index + 1 :]
