"""Arrow results into Logfire's response bodies: v1/v2 JSON, CSV (the Arrow stream needs no encoding).

The shapes and spellings come from recorded Logfire responses (``shared/fixtures/wire``): arrow-rs serde type
names (``"Utf8"``, ``{"Timestamp":["Microsecond","UTC"]}``), timestamps as ``2026-05-27T13:16:36.517321Z``,
JSON columns as nested JSON in JSON bodies and as text in CSV, lists in CSV as compact JSON, booleans as
``true``/``false``, and a CSV header even for an empty result.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logfire_io.schema import JSON_COLUMNS

__all__ = ["arrow_type_name", "encode_csv", "encode_v1_json", "encode_v2_json"]

_SIMPLE_NAMES = {
    pa.null(): "Null",
    pa.bool_(): "Boolean",
    pa.int8(): "Int8",
    pa.int16(): "Int16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.uint8(): "UInt8",
    pa.uint16(): "UInt16",
    pa.uint32(): "UInt32",
    pa.uint64(): "UInt64",
    pa.float16(): "Float16",
    pa.float32(): "Float32",
    pa.float64(): "Float64",
    pa.string(): "Utf8",
    pa.large_string(): "LargeUtf8",
    pa.string_view(): "Utf8View",
    pa.binary(): "Binary",
    pa.large_binary(): "LargeBinary",
    pa.date32(): "Date32",
    pa.date64(): "Date64",
}
_UNITS = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}

Version = Literal["v1", "v2"]


def _field_json(field: pa.Field, version: Version, *, nested: bool) -> dict[str, Any]:
    data_type = arrow_type_name(field.type, version)
    if version == "v1":
        return {"name": field.name, "nullable": field.nullable, "datatype": data_type}
    out: dict[str, Any] = {"name": field.name, "data_type": data_type, "nullable": field.nullable}
    if nested:
        out |= {"dict_id": 0, "dict_is_ordered": False, "metadata": {}}
    return out


def arrow_type_name(type_: pa.DataType, version: Version = "v2") -> Any:
    """The arrow-rs serde spelling of an Arrow type, as Logfire's JSON schemas carry it."""
    if type_ in _SIMPLE_NAMES:
        return _SIMPLE_NAMES[type_]
    if pa.types.is_timestamp(type_):
        return {"Timestamp": [_UNITS[type_.unit], type_.tz]}
    if pa.types.is_duration(type_):
        return {"Duration": _UNITS[type_.unit]}
    if pa.types.is_time32(type_) or pa.types.is_time64(type_):
        return {f"Time{type_.bit_width}": _UNITS[type_.unit]}
    if pa.types.is_decimal(type_):
        return {f"Decimal{type_.bit_width}": [type_.precision, type_.scale]}
    if pa.types.is_interval(type_):
        return {"Interval": "MonthDayNano"}
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        name = "List" if pa.types.is_list(type_) else "LargeList"
        return {name: _field_json(type_.value_field, version, nested=True)}
    if pa.types.is_fixed_size_list(type_):
        return {"FixedSizeList": [_field_json(type_.value_field, version, nested=True), type_.list_size]}
    if pa.types.is_struct(type_):
        return {"Struct": [_field_json(type_.field(i), version, nested=True) for i in range(type_.num_fields)]}
    if pa.types.is_dictionary(type_):
        return {"Dictionary": [arrow_type_name(type_.index_type, version), arrow_type_name(type_.value_type, version)]}
    return str(type_)


def _timestamp_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    utc = column.cast(pa.timestamp(column.type.unit, "UTC")) if column.type.tz else column
    suffix = "Z" if column.type.tz else ""
    return pc.strftime(utc, format=f"%Y-%m-%dT%H:%M:%S{suffix}")


def _is_json_text(name: str, column: pa.ChunkedArray) -> bool:
    return name in JSON_COLUMNS and pa.types.is_string(column.type)


def _parse_json(text: str | None, *, only_containers: bool) -> Any:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if not only_containers or isinstance(value, dict | list) else text


def _python_values(table: pa.Table, *, nest_json: bool) -> list[list[Any]]:
    """Each column as JSON-ready Python values, converted column-wise where Arrow can do it."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            column = _timestamp_text(column)
        values = column.to_pylist()
        if nest_json and _is_json_text(name, column):
            only_containers = name == "log_body"
            values = [_parse_json(v, only_containers=only_containers) for v in values]
        columns.append(values)
    return columns


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    msg = f"cannot encode {type(value).__name__} as JSON"
    raise TypeError(msg)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    columns = _python_values(table, nest_json=True)
    names = table.column_names
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if columns else []


def encode_v2_json(table: pa.Table, plans: dict[str, str] | None = None) -> bytes:
    """The ``POST /v2/query`` JSON body: ``{"schema": {"fields", "metadata"}, "data": [rows]}``."""
    body: dict[str, Any] = {
        "schema": {"fields": [_field_json(f, "v2", nested=False) for f in table.schema], "metadata": {}},
        "data": _rows(table),
    }
    if plans:
        body |= plans
    return _dumps(body)


def encode_v1_json(table: pa.Table, *, rows: bool) -> bytes:
    """The ``GET /v1/query`` JSON body, row-oriented (``json_rows=true``) or column-oriented."""
    fields = [_field_json(f, "v1", nested=False) for f in table.schema]
    if rows:
        return _dumps({"columns": fields, "rows": _rows(table)})
    values = _python_values(table, nest_json=True)
    return _dumps({"columns": [f | {"values": v} for f, v in zip(fields, values, strict=True)]})


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list | dict):
        return _dumps(value).decode()
    return value


def encode_csv(table: pa.Table) -> bytes:
    r"""The CSV body: RFC 4180 quoting where needed, ``\\n`` line ends, and always a header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    columns = _python_values(table, nest_json=False)
    for row in zip(*columns, strict=True):
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue().encode()
