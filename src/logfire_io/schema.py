"""The Arrow schemas of Logfire's ``records`` and ``metrics`` tables.

One source of truth for the client (scan schemas, JSON columns, time columns) and the local server (table
layout, ``GET /v1/schemas``). Column names, SQL types and NOT NULL flags follow Logfire's own ``/v1/schemas``
answer; Arrow types follow what Logfire's DataFusion engine returns (``timestamp[us, UTC]``, ``int32`` for
``INTEGER``; see the Query API spec §4).
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "JSON_COLUMNS",
    "LEVEL_NAMES",
    "LEVEL_NUMBERS",
    "METRICS_SCHEMA",
    "RECORDS_SCHEMA",
    "SQL_TYPE_NAMES",
    "TABLE_SCHEMAS",
    "TIME_COLUMNS",
    "sql_type_name",
]

_TS = pa.timestamp("us", tz="UTC")
_TEXT = pa.string()
_INT = pa.int32()
_FLOAT = pa.float64()


def _field(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


RECORDS_SCHEMA = pa.schema(
    [
        _field("start_timestamp", _TS, nullable=False),
        _field("end_timestamp", _TS, nullable=False),
        _field("duration", _FLOAT),
        _field("trace_id", _TEXT, nullable=False),
        _field("span_id", _TEXT, nullable=False),
        _field("parent_span_id", _TEXT),
        _field("kind", _TEXT, nullable=False),
        _field("level", _INT, nullable=False),
        _field("span_name", _TEXT, nullable=False),
        _field("message", _TEXT, nullable=False),
        _field("log_body", _TEXT),
        _field("attributes", _TEXT),
        _field("attributes_json_schema", _TEXT),
        _field("tags", pa.list_(_TEXT)),
        _field("is_exception", pa.bool_()),
        _field("exception_type", _TEXT),
        _field("exception_message", _TEXT),
        _field("exception_stacktrace", _TEXT),
        _field("otel_status_code", _TEXT),
        _field("otel_status_message", _TEXT),
        _field("otel_events", _TEXT),
        _field("otel_links", _TEXT),
        _field("otel_scope_name", _TEXT),
        _field("otel_scope_version", _TEXT),
        _field("otel_scope_attributes", _TEXT),
        _field("otel_resource_attributes", _TEXT),
        _field("service_name", _TEXT, nullable=False),
        _field("service_version", _TEXT),
        _field("service_instance_id", _TEXT),
        _field("service_namespace", _TEXT),
        _field("process_pid", _INT),
        _field("deployment_environment", _TEXT),
        _field("telemetry_sdk_name", _TEXT),
        _field("telemetry_sdk_language", _TEXT),
        _field("telemetry_sdk_version", _TEXT),
        _field("http_response_status_code", _INT),
        _field("http_method", _TEXT),
        _field("http_route", _TEXT),
        _field("url_full", _TEXT),
        _field("url_path", _TEXT),
        _field("url_query", _TEXT),
        _field("created_at", _TS, nullable=False),
        _field("day", pa.date32(), nullable=False),
        _field("project_id", _TEXT, nullable=False),
    ]
)
"""Schema of ``records_all``; ``records`` is the same table without ``kind = 'pending_span'`` rows."""

METRICS_SCHEMA = pa.schema(
    [
        _field("recorded_timestamp", _TS),
        _field("start_timestamp", _TS),
        _field("metric_name", _TEXT, nullable=False),
        _field("metric_type", _TEXT, nullable=False),
        _field("unit", _TEXT, nullable=False),
        _field("metric_description", _TEXT),
        _field("aggregation_temporality", _TEXT),
        _field("is_monotonic", pa.bool_()),
        _field("scalar_value", _FLOAT),
        _field("histogram_min", _FLOAT),
        _field("histogram_max", _FLOAT),
        _field("histogram_sum", _FLOAT),
        _field("histogram_count", _INT),
        _field("histogram_bucket_counts", pa.list_(_INT)),
        _field("histogram_explicit_bounds", pa.list_(_FLOAT)),
        _field("exp_histogram_scale", _INT),
        _field("exp_histogram_zero_count", _INT),
        _field("exp_histogram_zero_threshold", _FLOAT),
        _field("exp_histogram_positive_bucket_counts", pa.list_(_INT)),
        _field("exp_histogram_positive_bucket_counts_offset", _INT),
        _field("exp_histogram_negative_bucket_counts", pa.list_(_INT)),
        _field("exp_histogram_negative_bucket_counts_offset", _INT),
        _field("exemplars", _TEXT),
        _field("attributes", _TEXT),
        _field("attributes_json_schema", _TEXT),
        _field("otel_scope_name", _TEXT),
        _field("otel_scope_version", _TEXT),
        _field("otel_scope_attributes", _TEXT),
        _field("otel_resource_attributes", _TEXT),
        _field("service_name", _TEXT, nullable=False),
        _field("service_namespace", _TEXT),
        _field("service_version", _TEXT),
        _field("service_instance_id", _TEXT),
        _field("process_pid", _INT),
        _field("deployment_environment", _TEXT),
        _field("telemetry_sdk_name", _TEXT),
        _field("telemetry_sdk_language", _TEXT),
        _field("telemetry_sdk_version", _TEXT),
        _field("created_at", _TS, nullable=False),
        _field("day", pa.date32(), nullable=False),
        _field("project_id", _TEXT, nullable=False),
    ]
)
"""Schema of ``metrics``."""

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "records": RECORDS_SCHEMA,
    "records_all": RECORDS_SCHEMA,
    "metrics": METRICS_SCHEMA,
}
"""Every queryable table by name."""

TIME_COLUMNS: dict[str, str] = {
    "records": "start_timestamp",
    "records_all": "start_timestamp",
    "metrics": "recorded_timestamp",
}
"""The column that ``min_timestamp``/``max_timestamp`` filter, per table."""

JSON_COLUMNS: frozenset[str] = frozenset(
    {
        "attributes",
        "otel_events",
        "otel_links",
        "otel_resource_attributes",
        "otel_scope_attributes",
        "exemplars",
        "log_body",
    }
)
"""Text columns that hold serialized JSON (``log_body`` only sometimes: it may be a plain string)."""

SQL_TYPE_NAMES: dict[pa.DataType, str] = {
    _TS: "TIMESTAMP WITH TIME ZONE",
    _TEXT: "TEXT",
    _INT: "INTEGER",
    _FLOAT: "DOUBLE PRECISION",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
}


def sql_type_name(type_: pa.DataType) -> str:
    """Name an Arrow type the way Logfire's ``/v1/schemas`` does (``TEXT[]`` for a list of text)."""
    if pa.types.is_list(type_):
        return f"{sql_type_name(type_.value_type)}[]"
    return SQL_TYPE_NAMES[type_]


LEVEL_NUMBERS: dict[str, int] = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "notice": 10,
    "warn": 13,
    "warning": 13,
    "error": 17,
    "fatal": 21,
}
"""Logfire level names and their OTel severity numbers (``level`` holds the number)."""
LEVEL_NAMES: dict[int, str] = {number: name for name, number in LEVEL_NUMBERS.items() if name != "warning"}
"""Level numbers to their canonical names."""
