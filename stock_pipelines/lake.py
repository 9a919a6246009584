"""The Parquet lake: one directory per asset partition, replaced atomically.

    <data root>/<asset>/date=YYYY-MM-DD/part-0.parquet

A partition is written to a temporary file in the same directory, fsynced, renamed over
`part-0.parquet` and the directory fsynced (`atomic_files.replacing`): a reader sees the old
version or the new one, never half a file, and a crash leaves at most a stray `.tmp-*` file
(ignored by readers and removed by the next write of that partition).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl

from stock_pipelines.atomic_files import fsync_dir, makedirs, replacing
from stock_pipelines.settings import Settings

PART_NAME = "part-0.parquet"
ASSET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class PartitionMissing(FileNotFoundError):
    pass


def partition_dir(asset: str, day: date | str, data_dir: Path | None = None) -> Path:
    if not ASSET_NAME_PATTERN.fullmatch(asset):
        raise ValueError(f"asset name {asset!r} is not a lake name: use lowercase letters, digits, '_'")
    day_iso = date.fromisoformat(day).isoformat() if isinstance(day, str) else day.isoformat()
    root = data_dir if data_dir is not None else Settings.from_env().data_dir
    return root / asset / f"date={day_iso}"


def partition_path(asset: str, day: date | str, data_dir: Path | None = None) -> Path:
    return partition_dir(asset, day, data_dir) / PART_NAME


def write_partition(df: pl.DataFrame, asset: str, day: date | str, data_dir: Path | None = None) -> Path:
    """Replace the partition with `df`; returns the final path."""
    directory = partition_dir(asset, day, data_dir)
    created = _fresh_partition_dir(directory)
    final = directory / PART_NAME
    with replacing(final, suffix=".parquet") as handle:
        df.write_parquet(handle, compression="zstd", compression_level=1, statistics=True)
    for path in created:
        fsync_dir(path)
    return final


def write_partition_batches(
    batches: Iterable[pl.DataFrame],
    schema: Mapping[str, pl.DataType],
    asset: str,
    day: date | str,
    data_dir: Path | None = None,
) -> tuple[Path, int]:
    """Replace the partition with the concatenation of `batches` (one row group or more each),
    written as they come so the whole partition never has to be in memory; (path, rows).

    A batch is encoded in a second thread while the iterator computes the next (pyarrow releases
    the GIL), so producing and writing use both cores; at most one batch waits between them.
    Nothing is committed unless the iterator finishes: an exception in a batch leaves the old
    partition in place and no temporary file behind.
    """
    import pyarrow.parquet as pq

    directory = partition_dir(asset, day, data_dir)
    created = _fresh_partition_dir(directory)
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    final = directory / PART_NAME
    # dictionaries pay off for repeated strings; counters and timestamps (sorted or nearly, per
    # symbol) compress better and encode about twice as fast as deltas than as plain values
    strings = [name for name, dtype in schema.items() if dtype == pl.String]
    deltas = {
        name: "DELTA_BINARY_PACKED"
        for name, dtype in schema.items()
        if dtype.is_integer() or dtype.is_temporal()
    }
    rows = 0
    with replacing(final, suffix=".parquet") as handle:
        with (
            pq.ParquetWriter(
                handle,
                arrow_schema,
                compression="zstd",
                compression_level=1,
                use_dictionary=strings,
                column_encoding=deltas,
            ) as writer,
            ThreadPoolExecutor(1, thread_name_prefix="lake-writer") as pool,
        ):
            pending: Future | None = None
            for batch in batches:
                if not batch.height:
                    continue
                table = batch.to_arrow()
                table = table if table.schema == arrow_schema else table.cast(arrow_schema)
                if pending is not None:
                    pending.result()  # one batch in flight: bounded memory, errors surface here
                pending = pool.submit(writer.write_table, table)
                rows += batch.height
            if pending is not None:
                pending.result()
    for path in created:
        fsync_dir(path)
    return final, rows


def read_partition(asset: str, day: date | str, data_dir: Path | None = None) -> pl.DataFrame:
    return pl.read_parquet(_existing(asset, day, data_dir))


def scan_partition(asset: str, day: date | str, data_dir: Path | None = None) -> pl.LazyFrame:
    return pl.scan_parquet(_existing(asset, day, data_dir))


def partition_exists(asset: str, day: date | str, data_dir: Path | None = None) -> bool:
    return partition_path(asset, day, data_dir).is_file()


def _existing(asset: str, day: date | str, data_dir: Path | None) -> Path:
    path = partition_path(asset, day, data_dir)
    if not path.is_file():
        raise PartitionMissing(f"lake partition {asset}[{day}] does not exist ({path})")
    return path


def _fresh_partition_dir(directory: Path) -> list[Path]:
    """The partition's directory, created if need be and cleared of what an interrupted write
    left; the parents of the directories it created (each needs an fsync)."""
    created = makedirs(directory)
    for stale in directory.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    return created


RAW_TICKS = "raw_ticks"
RECOVERED_TRADES = "recovered_trades"


def day_trades(data_dir: Path | None, day: date | str) -> pl.DataFrame:
    """A day's trades in the raw_ticks columns: raw_ticks plus every recovered trade whose
    (symbol, cum) the archive lacks, sorted by symbol and cum. An archived trade always wins, so
    no trade appears twice; `source` says where each came from (`rest_*` for recovered ones).
    Either partition may be missing (read as empty); raw_ticks' schema is the frame's."""
    from stock_pipelines.archive.ticks import TICKS_SCHEMA
    from stock_pipelines.archive.trade_merge import merge_by_cum  # lazily: lake sits below archive

    def read(asset: str) -> pl.DataFrame:
        if partition_exists(asset, day, data_dir):
            return read_partition(asset, day, data_dir)
        return pl.DataFrame(schema=TICKS_SCHEMA)

    return merge_by_cum(read(RAW_TICKS), read(RECOVERED_TRADES))
