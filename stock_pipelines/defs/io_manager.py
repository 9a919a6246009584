"""The lake IO manager: an asset's output is its day's Parquet partition, and an input is read from
the upstream asset's partition of the same day (`lake.py`: written to a temporary file, renamed
into place, so a partition is the old version or the new one).

- An output is a `pl.DataFrame`, or `Batches` for one written as it is produced (never whole in
  memory: `raw_ticks`); the IO manager adds `path` and `dagster/row_count` to its metadata.
- An input is a `pl.LazyFrame` over the partition, so a step reads only the columns it selects.
  An input declared `lake_input(missing_ok=True)` is None when the upstream partition was never
  written (the step decides what that means); otherwise a missing partition fails the step,
  naming the partition to materialize first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import polars as pl

from stock_pipelines import lake
from stock_pipelines.defs.resources import LakeResource

LAKE = "lake_io_manager"  # the resource key; a step's own outputs (ops' results) keep Dagster's default
MISSING = "missing_partition"


def lake_input(missing_ok: bool = False) -> dg.AssetIn:
    """An input read from the lake; with `missing_ok`, None when the upstream partition is absent."""
    return dg.AssetIn(input_manager_key=LAKE, metadata={MISSING: "none"} if missing_ok else None)


@dataclass
class Batches:
    """An output written batch by batch; `metadata()` is asked once every batch is written."""

    frames: Iterable[pl.DataFrame]
    schema: Mapping[str, pl.DataType]
    metadata: Callable[[], Mapping[str, object]] = field(default=lambda: {})


def lake_name(key: dg.AssetKey) -> str:
    return key.path[-1]


class LakeIOManager(dg.ConfigurableIOManager):
    """Reads and writes `<data dir>/<asset>/date=YYYY-MM-DD/part-0.parquet`; `data_dir` as in
    `LakeResource` (the two are bound with the same value)."""

    data_dir: str | None = None

    @property
    def lake(self) -> LakeResource:
        return LakeResource(data_dir=self.data_dir)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | Batches | None) -> None:
        if obj is None:
            return
        day, name = date.fromisoformat(context.partition_key), lake_name(context.asset_key)
        if isinstance(obj, Batches):
            path, rows = lake.write_partition_batches(obj.frames, obj.schema, name, day, self.lake.root())
            extra = dict(obj.metadata())
        else:
            path, rows, extra = lake.write_partition(obj, name, day, self.lake.root()), obj.height, {}
        context.add_output_metadata(
            {"dagster/row_count": rows, "path": dg.MetadataValue.path(str(path)), **extra}
        )

    def load_input(self, context: dg.InputContext) -> pl.LazyFrame | None:
        key = context.asset_key
        day = date.fromisoformat(context.asset_partition_key)
        if lake.partition_exists(lake_name(key), day, self.lake.root()):
            return lake.scan_partition(lake_name(key), day, self.lake.root())
        if (context.definition_metadata or {}).get(MISSING) == "none":
            return None
        raise dg.Failure(f"lake partition {key.to_user_string()}[{day}] does not exist: materialize it first")


def column_schema(
    schema: Mapping[str, pl.DataType], descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    """A Parquet table's columns for the catalog (`dagster/column_schema`)."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=descriptions.get(name))
            for name, dtype in schema.items()
        ]
    )
