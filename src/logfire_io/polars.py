"""Logfire for polars: ``read_logfire``, ``scan_logfire`` (lazy, with pushdown) and a ``logfire`` namespace.

Importing :mod:`logfire_io` also sets ``pl.read_logfire`` and ``pl.scan_logfire``. Those are plain module
attributes (polars has no registry for top-level readers), so type checkers do not know them; for typed code,
``from logfire_io.polars import read_logfire, scan_logfire``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from polars.io.plugins import register_io_source

import polars as pl
from logfire_io._exceptions import ConfigurationError
from logfire_io._fields import StructFields
from logfire_io._json import JSONColumns, decode_json_columns
from logfire_io._json_schema import SCHEMAS_SQL, struct_from_schemas
from logfire_io._predicate import Pushdown, translate
from logfire_io._read import DEFAULT_MAX_CONCURRENCY, ReadRequest, iter_tables, open_client, read_logfire_arrow
from logfire_io._splice import statement_text
from logfire_io._sql import output_order, probe_sql, quote_identifier
from logfire_io.schema import LEVEL_NAMES, TABLE_SCHEMAS, TIME_COLUMNS

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    import pyarrow as pa

    from logfire_io._client import LogfireQueryClient

__all__ = ["LogfireExprNamespace", "LogfireFrameNamespace", "read_logfire", "scan_logfire"]


def read_logfire(
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
) -> pl.DataFrame:
    """Read a Logfire query into a polars DataFrame: every row of the window, JSON columns as structs.

    The Arrow result is handed to polars without a rechunk, so numeric and timestamp buffers are shared, not
    copied. Importing :mod:`logfire_io` also makes this ``pl.read_logfire``.

    Parameters
    ----------
    {read_parameters}

    Returns
    -------
    polars.DataFrame
        The result; with ``json_columns="auto"`` a JSON column is a struct whose dotted keys stay field names.

    Raises
    ------
    {reader_raises}

    Examples
    --------
    >>> import polars as pl
    >>> import logfire_io  # sets pl.read_logfire
    >>> df = pl.read_logfire("SELECT span_name, attributes FROM records WHERE attributes ? 'http.route'", limit=5)
    >>> df.height, df.schema["attributes"].__class__.__name__
    (5, 'Struct')
    >>> df.select(pl.col("attributes").struct.field("http.route")).null_count().item()
    0
    """
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
    return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]


def _polars_schema(schema: pa.Schema) -> pl.Schema:
    return pl.from_arrow(schema.empty_table()).schema  # type: ignore[union-attr]


def scan_logfire(
    sql_or_table: str,
    *,
    read_token: str | None = None,
    base_url: str | None = None,
    min_timestamp: datetime | None = None,
    max_timestamp: datetime | None = None,
    slices: int | timedelta | None = None,
    max_concurrency: int | None = None,
    json_columns: Mapping[str, pl.DataType] | Literal["auto"] | None = None,
    progress: bool | None = None,
    timezone: str | None = None,
    environment: str | list[str] | None = None,
    client: LogfireQueryClient | None = None,
) -> pl.LazyFrame:
    """Lazily scan a Logfire table (``"records"``, ``"records_all"``, ``"metrics"``) or query.

    Only what the query plan needs is fetched: selected columns become the SELECT list, translatable filters
    become SQL (bounds on the time column also narrow ``min_timestamp``/``max_timestamp``), and ``head(n)``
    becomes a limit that stops reading early. Every batch is still filtered with the full predicate locally,
    so a filter that cannot be translated is never dropped. Reads past the row cap are sliced as in
    :func:`read_logfire`. Importing :mod:`logfire_io` also makes this ``pl.scan_logfire``.

    .. warning:: Built on polars' IO plugin API, which polars marks **unstable**.

    Parameters
    ----------
    sql_or_table
        A table name, or a SQL query (its schema is probed with one zero-row request as the scan is built, so a
        query the service refuses raises here, as its own error).
    json_columns
        JSON text columns to decode, with their polars dtypes. The lazy schema must be known before reading,
        so JSON columns such as ``attributes`` stay text unless given here; decode them after collecting with
        ``df.logfire.decode_json()``, or use :func:`read_logfire`, which infers the structs. A column given a
        ``pl.Struct`` is fetched field by field (``attributes ->> 'key'`` for each declared field, never the
        whole JSON text), and filters on its string and numeric fields are sent as SQL: declare only the keys
        the analysis needs. ``"auto"`` (tables ``records``/``records_all`` only) builds the ``attributes``
        struct from the window's distinct ``attributes_json_schema`` values, one small aggregate request sent as
        the scan is built: it
        knows the keys the logfire SDK set from arguments, not those of OpenTelemetry instrumentation, and
        types a key only when its schema names a type (String otherwise).
    {reader_parameters}

    Returns
    -------
    polars.LazyFrame
        A lazy frame; nothing is requested before it is collected (but the probe of a query's schema, and the
        request of ``json_columns="auto"``). An error
        while collecting is the same ``LogfireIOError`` a read raises, not a polars ``ComputeError``.

    Raises
    ------
    {reader_raises}

    Examples
    --------
    >>> import polars as pl
    >>> from logfire_io.polars import scan_logfire
    >>> errors = scan_logfire("records").filter(pl.col("level") >= 17).select("span_name", "level").head(3)
    >>> errors.collect().height
    3
    """
    if not (json_columns is None or json_columns == "auto" or isinstance(json_columns, Mapping)):
        msg = (
            f"`json_columns` in scan_logfire must be a dict of column name to polars dtype, 'auto' or None, got "
            f"{json_columns!r}\n\nHint: a lazy scan needs its schema before reading; 'auto' builds the "
            "attributes struct from the window's attributes_json_schema values, a dict declares the fields."
        )
        raise ConfigurationError(msg)
    if not isinstance(sql_or_table, str):
        msg = f"`sql_or_table` must be a table name or a SQL query (a string), got {type(sql_or_table).__name__}"
        raise TypeError(msg)
    table = sql_or_table.strip()
    is_table = table.lower() in TABLE_SCHEMAS
    if not table:
        msg = "`sql_or_table` must be a table name ('records', 'records_all', 'metrics') or a SQL query"
        raise ConfigurationError(msg)
    common: dict[str, Any] = {
        "min_timestamp": min_timestamp,
        "max_timestamp": max_timestamp,
        "slices": slices,
        "max_concurrency": DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        "progress": progress,
        "timezone": timezone,
        "environment": environment,
    }
    ReadRequest("SELECT 1", **common)  # type: ignore[arg-type]  # validate arguments now, not at collect()
    StructFields.of(json_columns if isinstance(json_columns, Mapping) else None)
    if json_columns == "auto" and table.lower() not in {"records", "records_all"}:
        msg = (
            f"`json_columns='auto'` in scan_logfire needs the table 'records' or 'records_all' (it reads their "
            f"attributes_json_schema), got {table!r}\n\nHint: declare the dtypes: "
            'json_columns={"attributes": pl.Struct({...})}.'
        )
        raise ConfigurationError(msg)
    order = () if is_table else output_order(table)
    time_column = TIME_COLUMNS[table.lower()] if is_table else None

    # Learned now, not in polars' schema callback: polars wraps what that raises in a ComputeError, and a
    # LogfireIOError must reach the user as itself (what the source generator raises does).
    def answers(sql: str) -> list[pa.Table]:
        with open_client(client, read_token, base_url, 1) as active:
            request = ReadRequest(sql, **{**common, "slices": None})  # type: ignore[arg-type]
            return list(iter_tables(active, request, owns_client=client is None))

    declared = dict(json_columns) if isinstance(json_columns, Mapping) else {}
    if json_columns == "auto":  # the attributes struct of the window's schemas (a table: no probe below)
        texts = [text for piece in answers(SCHEMAS_SQL.format(table=table.lower())) for text in piece["s"].to_pylist()]
        struct = struct_from_schemas(texts)
        declared = {"attributes": struct} if struct.fields else {}
    if is_table:
        schema = _polars_schema(TABLE_SCHEMAS[table.lower()])
    else:
        schema = _polars_schema(answers(probe_sql(table))[0].schema)
    for name, dtype in declared.items():
        if name not in schema:
            msg = f"`json_columns` names {name!r}, which the scan does not have; it has {list(schema)}"
            raise ConfigurationError(msg)
        schema[name] = dtype
    structs = StructFields.of(declared)
    whole_text = {name: dtype for name, dtype in declared.items() if name not in structs.structs}

    def pushed_sql(selected: list[str], where: str | None, structs: StructFields) -> str:
        """The SQL that asks for ``selected`` columns (struct ones field by field) of rows matching ``where``."""
        source_sql = table.lower() if is_table else f"(\n{statement_text(table)}\n) AS q"
        sql = f"SELECT {', '.join(entry for c in selected for entry in structs.select_list(c))} FROM {source_sql}"
        if where:
            sql += f" WHERE {where}"
        if order:
            keys = (
                f"{quote_identifier(k.name or '')} {'DESC' if k.descending else 'ASC'} "
                f"NULLS {'FIRST' if k.nulls_first else 'LAST'}"
                for k in order
            )
            sql += f" ORDER BY {', '.join(keys)}"
        return sql

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        columns = list(with_columns) if with_columns is not None else list(schema)
        needed = set(columns) | (set(predicate.meta.root_names()) if predicate is not None else set())
        needed |= {k.name for k in order or ()}
        selected = [name for name in schema if name in needed] or [next(iter(schema))]
        if order is None:  # an ORDER BY that a wrapper cannot repeat: run the query as written, filter here
            pushdown, sql = Pushdown(None, complete=predicate is None), table
        else:
            pushdown = translate(predicate, time_column=time_column, structs=structs.structs)
            sql = pushed_sql(selected, pushdown.where, structs)
        fully_pushed = predicate is None or pushdown.complete
        low = max(filter(None, [common["min_timestamp"], pushdown.min_timestamp]), default=None)
        high = min(filter(None, [common["max_timestamp"], pushdown.max_timestamp]), default=None)
        if low and high and low > high:
            return
        request = ReadRequest(
            sql,
            **{**common, "min_timestamp": low, "max_timestamp": high},  # type: ignore[arg-type]
            limit=n_rows if fully_pushed else None,
        )
        remaining = n_rows
        with open_client(client, read_token, base_url, request.max_concurrency) as active:
            for piece in iter_tables(active, request, owns_client=client is None):
                whole = declared if order is None else whole_text  # a query as written: its JSON comes whole
                texts = {name: dtype for name, dtype in whole.items() if name in piece.column_names}
                frame = pl.from_arrow(decode_json_columns(piece, texts), rechunk=False)
                assert isinstance(frame, pl.DataFrame)
                frame = structs.assemble(frame)
                if predicate is not None:
                    frame = frame.filter(predicate)
                frame = frame.select(columns)
                if remaining is not None:
                    frame = frame.head(remaining)
                    remaining -= frame.height
                for offset in range(0, max(frame.height, 1), batch_size or max(frame.height, 1)):
                    yield frame.slice(offset, batch_size or frame.height)
                if remaining == 0:
                    return

    return register_io_source(source, schema=schema, is_pure=True)


@pl.api.register_expr_namespace("logfire")
class LogfireExprNamespace:
    """``pl.col(...).logfire``: helpers for Logfire columns."""

    def __init__(self, expr: pl.Expr) -> None:
        self._expr = expr

    def level_name(self) -> pl.Expr:
        """Level numbers to Logfire's names (9 -> ``"info"``, 17 -> ``"error"``), like SQL ``level_name``.

        Returns
        -------
        polars.Expr
            A string expression; numbers that are no level's become null.

        Examples
        --------
        >>> import polars as pl
        >>> import logfire_io  # registers the namespace
        >>> pl.DataFrame({"level": [9, 17]}).select(pl.col("level").logfire.level_name()).to_series().to_list()
        ['info', 'error']
        """
        return self._expr.replace_strict(LEVEL_NAMES, default=None, return_dtype=pl.String)


@pl.api.register_dataframe_namespace("logfire")
class LogfireFrameNamespace:
    """``df.logfire``: helpers for frames read from Logfire."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def decode_json(self, *columns: str) -> pl.DataFrame:
        """Decode JSON text columns into structs with the exact rules of ``json_columns="auto"``.

        Parameters
        ----------
        *columns
            The columns to decode; without names, Logfire's JSON columns present in the frame.

        Returns
        -------
        polars.DataFrame
            The frame with those columns as structs (fields: the union of the keys over every row).

        Raises
        ------
        ConfigurationError
            A named column is missing or is not text.

        Examples
        --------
        >>> import polars as pl
        >>> import logfire_io  # registers the namespace
        >>> frame = pl.DataFrame({"attributes": ['{"http.route": "/users", "status": 200}', '{"status": 404}']})
        >>> frame.logfire.decode_json()["attributes"].struct.field("status").to_list()
        [200, 404]
        """
        table = self._frame.to_arrow()
        decoded = decode_json_columns(table, list(columns) if columns else "auto")
        return pl.from_arrow(decoded, rechunk=False)  # type: ignore[return-value]
