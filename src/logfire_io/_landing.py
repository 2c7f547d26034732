"""Results built as slices land: each slice is copied out of its response and converted at once.

A slice's Arrow buffers point into its response body (:mod:`logfire_io._ipc` decodes without copying), so a
frame that keeps any column zero-copy (polars shares numeric buffers) would keep the whole body alive, strings it
has already copied included, until the read ends. Each slice is therefore copied into buffers of its own, column
by column, and converted to the output as it lands; its response is freed then, and a read's peak is the result
plus the slices in flight.

JSON columns are the exception: their decoded type is the union over every row (see :mod:`logfire_io._json`),
so their text is kept, compact, and decoded once every slice has landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import pyarrow as pa

from logfire_io._json import JSONColumns, decode_json_columns, json_column_names

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["Landed", "Part", "land", "owned"]

Part = TypeVar("Part")


def owned(table: pa.Table) -> pa.Table:
    """``table`` copied into buffers of its own, one set per column, so that nothing it points into outlives it."""
    return pa.concat_tables([table, table.slice(0, 0)]).combine_chunks()


@dataclass
class Landed(Generic[Part]):
    """A read's result as it landed: the converted slices (without JSON columns) and the JSON columns decoded."""

    names: list[str]
    """The result's columns, in order."""
    parts: list[Part]
    """Each slice's columns but the JSON ones, converted, in the result's row order (as ``names`` without the
    JSON columns when ``json`` is not None)."""
    json: pa.Table | None
    """The JSON columns of every row, decoded; None when none is decoded."""


def land(pieces: Iterable[pa.Table], json_columns: JSONColumns, convert: Callable[[pa.Table], Part]) -> Landed[Part]:
    """Convert each piece as it arrives, releasing it before the next is taken; decode JSON columns at the end.

    ``convert`` gets the piece's other columns, still pointing into the response: whatever it keeps must be its
    own (a copy, or :func:`owned`), or the response stays alive with it.
    """
    names: list[str] | None = None
    json_names: list[str] = []
    parts: list[Part] = []
    texts: list[pa.Table] = []
    for piece in pieces:
        if names is None:
            names, json_names = piece.column_names, json_column_names(piece, json_columns)
        if json_names:
            texts.append(owned(piece.select(json_names)))
        parts.append(convert(piece.drop_columns(json_names)))
        del piece  # the response body goes with the last reference to the piece
    json = None
    if texts:
        text = pa.concat_tables(texts, promote_options="permissive")
        texts.clear()
        json = decode_json_columns(text, json_columns)
    return Landed(names or [], parts, json)
