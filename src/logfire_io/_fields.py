"""Fields of a JSON column declared as a struct: fetched one by one as SQL, and put back together locally.

polars tells an IO plugin which *columns* a query needs, never which struct fields; so when ``scan_logfire`` is
given a struct dtype for a JSON column (``json_columns={"attributes": pl.Struct({...})}``), the declared fields
are the projection. Each is fetched as ``"attributes" ->> 'key'`` (its text, a string unquoted) instead of the
whole JSON document, and turned into the declared dtype here, with the same rule the pushed SQL uses:

- ``String``: the text as is (an object or list value is its JSON text);
- integers and floats: the text cast leniently (SQL ``TRY_CAST``, polars ``cast(strict=False)``), ASCII
  whitespace around it trimmed first as SQL's cast trims it (``" 7 "`` is 7): a value that is not a number of
  that kind is null, on both sides, so a filter pushed as SQL (``Int64`` and ``Float64``
  fields; narrower ones are filtered locally) keeps exactly the rows the local filter keeps;
- ``Boolean``: ``true``/``false``, anything else null;
- a nested struct or a list: the text decoded as JSON with that dtype (a value that does not fit is a
  :class:`ConfigurationError`, as in :func:`read_logfire`);
- other dtypes (``Categorical``, ``Enum``, ``Decimal``): the text cast leniently; temporal dtypes are refused
  (declare them ``String`` and convert after collecting).

A null document (SQL NULL, or the JSON text ``null``) is a null struct, as :func:`read_logfire` makes it: one
boolean column per JSON column says which rows are null (``json_length`` is NULL for both, and for a scalar).

Why the declared dtype and not the fields a query uses: polars' IO plugin callback receives column names
(``select(pl.col("attributes").struct.field("a"))`` arrives as ``with_columns=["attributes"]``), a predicate and
``n_rows``, nothing finer; polars' maintainers say a richer pushdown needs an IO plugin redesign (pola-rs/polars
#23727). A filter on a field does arrive whole, inside the predicate, and is translated in
:mod:`logfire_io._predicate`. A query whose ORDER BY a wrapper cannot repeat is sent as written, so its JSON
columns come whole and are decoded with the declared dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
from logfire_io._exceptions import ConfigurationError
from logfire_io._sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["StructFields", "field_sql", "null_sql"]

_ARRAY_COLUMNS = frozenset({"otel_events", "otel_links"})
"""Logfire's JSON columns that hold an array: a struct's ``->> 'key'`` on them is always NULL."""

_CAST_TRIMS = " \t\n\r\x0c"
"""What SQL's ``TRY_CAST`` of text to a number ignores around it (Rust's ASCII whitespace; not ``\\x0b``)."""

_SQL_CASTS = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE"}
"""Numeric field dtypes a filter is pushed for, and the SQL type of the same width their text is cast to.

Narrower dtypes are filtered locally only: ``300`` in a ``UInt8`` field is null here but 300 in SQL, so a pushed
``is_null`` would drop a row the local filter keeps (and ``Float32`` rounds where SQL's double does not)."""


def _text_sql(column: str, key: str) -> str:
    return f"({quote_identifier(column)} ->> {quote_literal(key)})"


def field_sql(column: str, key: str, dtype: pl.DataType) -> str | None:
    """SQL for the value of field ``key`` of JSON ``column`` as the local frame holds it; None if no SQL matches it."""
    if dtype == pl.String:
        return _text_sql(column, key)
    cast = next((sql for kind, sql in _SQL_CASTS.items() if dtype == kind), None)
    return None if cast is None else f"TRY_CAST({_text_sql(column, key)} AS {cast})"


def null_sql(column: str) -> str:
    """SQL true where JSON ``column`` holds no object: SQL NULL or JSON ``null`` (a null struct, as read whole)."""
    return f"(json_length({quote_identifier(column)}) IS NULL)"


def _from_text(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The text of one field (as ``->>`` gives it) as ``dtype``, by the rules in the module docstring."""
    if dtype == pl.String:
        return text
    if dtype == pl.Boolean:
        return pl.when(text == "true").then(True).when(text == "false").then(False).otherwise(None)
    if dtype.is_nested():
        return text.str.json_decode(dtype)
    if dtype.is_numeric():
        text = text.str.strip_chars(_CAST_TRIMS)
    return text.cast(dtype, strict=False)


def _check(column: str, dtype: pl.Struct) -> pl.Struct:
    """``dtype`` if ``column`` holds objects and every field can be built from its text (a temporal one cannot)."""
    if column in _ARRAY_COLUMNS:
        msg = (
            f"`json_columns` declares {column!r} a pl.Struct, but Logfire stores a JSON array in it, so every field "
            f"would be null.\n\nHint: declare it a list of structs, e.g. {{{column!r}: pl.List(pl.Struct("
            "{'name': pl.String}))}, decoded from its whole text."
        )
        raise ConfigurationError(msg)
    if not dtype.fields:
        msg = (
            f"`json_columns` declares no field of {column!r} (an empty pl.Struct), so a scan has nothing to fetch "
            f"of it.\n\nHint: declare the keys the analysis needs, e.g. {{{column!r}: pl.Struct({{'http.route': "
            "pl.String})}, or json_columns='auto'."
        )
        raise ConfigurationError(msg)
    for field in dtype.fields:
        if field.dtype.is_temporal() or field.dtype in (pl.Binary, pl.Object, pl.Null):
            msg = (
                f"`json_columns` declares field {field.name!r} of {column!r} as {field.dtype}, which a scan cannot "
                "build from the field's JSON text.\n\nHint: declare it pl.String and convert it after "
                "collecting (e.g. `.str.to_datetime()`)."
            )
            raise ConfigurationError(msg)
    return dtype


@dataclass(frozen=True)
class StructFields:
    """The JSON columns fetched field by field: column name -> its declared struct dtype."""

    structs: Mapping[str, pl.Struct]

    @classmethod
    def of(cls, json_columns: Mapping[str, pl.DataType] | None) -> StructFields:
        """The struct-typed entries of a scan's ``json_columns`` (other dtypes are decoded from the whole text)."""
        return cls(
            {name: _check(name, dtype) for name, dtype in (json_columns or {}).items() if isinstance(dtype, pl.Struct)}
        )

    @staticmethod
    def _alias(column: str, index: int | str) -> str:
        return f"__logfire_{column}_{index}"

    def select_list(self, column: str) -> list[str]:
        """The SELECT entries fetching ``column``: each declared field's text, and whether the document is null."""
        if column not in self.structs:
            return [quote_identifier(column)]
        fields = [
            f"{_text_sql(column, field.name)} AS {quote_identifier(self._alias(column, i))}"
            for i, field in enumerate(self.structs[column].fields)
        ]
        return [*fields, f"{null_sql(column)} AS {quote_identifier(self._alias(column, 'null'))}"]

    def assemble(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with every struct column fetched field by field built back, in place of its pieces."""
        for column, dtype in self.structs.items():
            is_null = self._alias(column, "null")
            if is_null not in frame.columns:
                continue
            pieces = [self._alias(column, i) for i in range(len(dtype.fields))]
            built = pl.struct(
                [
                    _from_text(pl.col(piece).cast(pl.String), field.dtype).alias(field.name)
                    for piece, field in zip(pieces, dtype.fields, strict=True)
                ]
            )
            value = pl.when(pl.col(is_null)).then(None).otherwise(built).cast(dtype).alias(column)
            try:
                frame = frame.with_columns(value).drop([*pieces, is_null])
            except pl.exceptions.PolarsError as exc:
                reason = str(exc).splitlines()[0][:200]
                msg = (
                    f"`json_columns` gives {column!r} the dtype {dtype}, which some field's JSON does not fit "
                    f"({reason}).\n\nHint: declare that field pl.String and decode it after collecting."
                )
                raise ConfigurationError(msg) from exc
        return frame
