"""tick_minute_bars: one-minute OHLCV per symbol built from raw_ticks (archive.bars)."""

import dagster as dg

from stock_pipelines import lake
from stock_pipelines.archive.bars import minute_bars
from stock_pipelines.defs.assets.raw_ticks import raw_ticks, session_for
from stock_pipelines.defs.partitions import trading_day_partitions


@dg.asset(
    partitions_def=trading_day_partitions,
    group_name="ticks",
    deps=[raw_ticks],
    description="One-minute OHLCV bars per symbol from raw_ticks (minute = start of the minute; "
    "the closing-auction print is its own bar at the close). source='ticks'.",
)
def tick_minute_bars(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    day, session = session_for(context.partition_key)
    try:
        ticks = lake.scan_partition("raw_ticks", day)
    except lake.PartitionMissing as error:
        raise dg.Failure(f"{error}: materialize raw_ticks[{day}] first") from error
    bars = minute_bars(ticks, session, presorted=True)  # raw_ticks is written sorted by (symbol, cum)
    path = lake.write_partition(bars, "tick_minute_bars", day)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": bars.height,
            "symbols": bars["symbol"].n_unique(),
            "trades": int(bars["trades"].sum()) if bars.height else 0,
            "path": dg.MetadataValue.path(str(path)),
        }
    )
