"""tick_minute_bars: one-minute OHLCV per symbol built from raw_ticks (archive.bars)."""

import dagster as dg
import polars as pl

from stock_pipelines.archive.bars import minute_bars
from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.defs.assets.raw_ticks import session_for
from stock_pipelines.defs.io_manager import LAKE, column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.tags import TICKS, catalog

BAR_COLUMNS = {
    "minute": "start of the minute (UTC); the closing-auction print is its own bar at the close",
    "trades": "trades in the bar; null for broker bars",
    "source": "ticks, ticks_other_archive, rest_kis or rest_kiwoom",
}


@dg.asset(
    partitions_def=trading_day_partitions,
    group_name="ticks",
    ins={"raw_ticks": lake_input()},
    io_manager_key=LAKE,
    description="One-minute OHLCV bars per symbol from raw_ticks (minute = start of the minute; "
    "the closing-auction print is its own bar at the close). source='ticks'.",
    metadata={"dagster/column_schema": column_schema(BAR_SCHEMA, BAR_COLUMNS)},
    **catalog(TICKS),
)
def tick_minute_bars(context: dg.AssetExecutionContext, raw_ticks: pl.LazyFrame) -> dg.Output[pl.DataFrame]:
    _, session = session_for(context.partition_key)
    bars = minute_bars(raw_ticks, session, presorted=True)  # raw_ticks is written sorted by (symbol, cum)
    return dg.Output(
        bars,
        metadata={
            "symbols": bars["symbol"].n_unique(),
            "trades": int(bars["trades"].sum()) if bars.height else 0,
        },
    )
