"""What the day's assets share: optional inputs, the partition's trading day and the day's symbols."""

from collections.abc import Mapping
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from stock_pipelines import lake
from stock_pipelines.market import krx_calendar


def collected(frame: pl.LazyFrame | None, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """An optional lake input (`lake_input(missing_ok=True)`) collected; no rows of `schema` when no
    run has built that partition."""
    return frame.collect() if frame is not None else pl.DataFrame(schema=schema)


def trading_day(context: dg.AssetExecutionContext) -> date:
    day = date.fromisoformat(context.partition_key)
    if not krx_calendar().is_trading_day(day):
        raise dg.Failure(f"{day} is not a KRX trading day")
    return day


def universe(day: date, ticks: pl.DataFrame, root: Path) -> list[str]:
    """Today's symbols and the previous trading day's (a symbol silent all day is still followed)."""
    symbols = set(ticks.get_column("symbol").unique().to_list()) if ticks.height else set()
    previous = krx_calendar().previous_trading_day(day)
    if previous is not None and lake.partition_exists("raw_ticks", previous, root):
        scan = lake.scan_partition("raw_ticks", previous, root)
        symbols |= set(scan.select("symbol").unique().collect()["symbol"])
    return sorted(symbols)
