"""pl.read_logfire and friends against the local server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import logfire_io
import polars as pl
from logfire_io import LogfireQueryClient, RowCapError
from logfire_io._json import decode_json_columns
from logfire_io.polars import read_logfire, scan_logfire
from logfire_io.server import LocalLogfire

SQL = (
    "SELECT start_timestamp, span_id, level, tags, attributes, otel_events FROM records "
    "ORDER BY start_timestamp, span_id"
)
SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def test_importing_sets_polars_attributes() -> None:
    assert pl.read_logfire is read_logfire  # type: ignore[attr-defined]
    assert pl.scan_logfire is scan_logfire  # type: ignore[attr-defined]


def test_read_equals_client_query_arrow_converted_by_hand(server: LocalLogfire) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url}
    with LogfireQueryClient(**kwargs) as client:  # type: ignore[arg-type]
        raw = client.query_arrow(SQL, limit=2_000)
    by_hand = pl.from_arrow(decode_json_columns(raw, "auto"))
    ours = pl.read_logfire(SQL, limit=2_000, **kwargs)  # type: ignore[attr-defined]
    assert ours.equals(by_hand)
    assert ours.schema["start_timestamp"] == pl.Datetime("us", "UTC")
    assert isinstance(ours.schema["attributes"], pl.Struct)
    arrow = logfire_io.read_logfire_arrow(SQL, limit=2_000, json_columns=None, **kwargs)
    assert arrow.equals(raw)


def test_token_from_environment(server: LocalLogfire, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", server.base_url)
    assert pl.read_logfire("SELECT 1 AS x").to_dicts() == [{"x": 1}]  # type: ignore[attr-defined]


def test_missing_token_is_a_clear_error() -> None:
    with pytest.raises(logfire_io.ConfigurationError, match="LOGFIRE_READ_TOKEN"):
        read_logfire("SELECT 1", base_url="http://127.0.0.1:9")


def test_decoded_attributes_keep_dotted_keys(server: LocalLogfire) -> None:
    frame = read_logfire(
        "SELECT attributes FROM records WHERE attributes ? 'http.route'",
        read_token=server.read_token,
        base_url=server.base_url,
    )
    routes = frame.select(pl.col("attributes").struct.field("http.route")).to_series()
    assert routes.null_count() == 0
    assert routes.str.starts_with("/").all()


def test_json_columns_options(server: LocalLogfire) -> None:
    kwargs = {"read_token": server.read_token, "base_url": server.base_url, "limit": 50}
    assert read_logfire(SQL, json_columns=None, **kwargs).schema["attributes"] == pl.String  # type: ignore[arg-type]
    picked = read_logfire(SQL, json_columns=["otel_events"], **kwargs)  # type: ignore[arg-type]
    assert picked.schema["attributes"] == pl.String
    assert picked.schema["otel_events"] != pl.String
    typed = read_logfire(SQL, json_columns={"attributes": pl.Struct({"db.rows": pl.Int64})}, **kwargs)  # type: ignore[arg-type]
    assert typed.schema["attributes"] == pl.Struct({"db.rows": pl.Int64})
    with pytest.raises(logfire_io.ConfigurationError, match="does not have"):
        read_logfire(SQL, json_columns=["nope"], **kwargs)  # type: ignore[arg-type]


def test_row_cap_is_an_error_not_a_short_frame(server: LocalLogfire) -> None:
    with pytest.raises(RowCapError, match="10,000-row cap"):
        read_logfire(
            "SELECT span_id, count(*) FROM records GROUP BY span_id",
            read_token=server.read_token,
            base_url=server.base_url,
        )


def test_namespaces(server: LocalLogfire) -> None:
    frame = read_logfire(
        "SELECT level, attributes FROM records ORDER BY span_id",
        json_columns=None,
        limit=500,
        read_token=server.read_token,
        base_url=server.base_url,
    )
    names = frame.select(pl.col("level").logfire.level_name()).to_series()  # type: ignore[attr-defined]
    assert set(names.unique()) <= {"trace", "debug", "info", "notice", "warn", "error", "fatal"}
    decoded = frame.logfire.decode_json()  # type: ignore[attr-defined]
    assert isinstance(decoded.schema["attributes"], pl.Struct)


def test_merged_slices_share_buffers(server: LocalLogfire) -> None:
    frame = read_logfire(
        "SELECT span_id, level FROM records_all",
        slices=4,
        read_token=server.read_token,
        base_url=server.base_url,
    )
    assert frame.height == 20_000
    assert frame["level"].n_chunks() > 1  # concatenated without a rechunk (a rechunk would copy every buffer)
