"""Polars frames as Dagster table metadata (`MetadataValue.table` with a `TableSchema`): the UI
shows them as sortable tables with typed columns. Times are shown as Asia/Seoul clock times."""

from collections.abc import Mapping, Sequence

import dagster as dg
import polars as pl

MAX_LISTED = 25

_TYPES = {pl.Boolean: "bool", pl.Float32: "float", pl.Float64: "float"}


def _column_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    return _TYPES.get(type(dtype), "string")


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def frame_table(frame: pl.DataFrame, limit: int = MAX_LISTED) -> dg.TableMetadataValue:
    """The first `limit` rows of `frame`; datetimes as HH:MM (Seoul), lists joined by commas."""
    shown = frame.head(limit).with_columns(
        pl.col(pl.Datetime)
        .dt.convert_time_zone("Asia/Seoul")
        .dt.strftime("%H:%M")
    )
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _column_type(dtype)) for name, dtype in shown.schema.items()]
    )
    records = [dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema=schema)


def listing(name: str, frame: pl.DataFrame, limit: int = MAX_LISTED) -> dict[str, object]:
    """`{name: table}`, plus `{name}_truncated` saying how many rows the table leaves out."""
    entries: dict[str, object] = {name: frame_table(frame, limit)}
    if frame.height > limit:
        entries[f"{name}_truncated"] = f"first {limit} of {frame.height} rows"
    return entries


def rows_table(
    columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, object]]
) -> dg.TableMetadataValue:
    """A table of `rows` (dicts) with the given (name, type) columns."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    records = [dg.TableRecord({name: _cell(row.get(name)) for name, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records, schema=schema)
