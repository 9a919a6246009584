"""raw_ticks -> one-minute OHLCV bars per symbol.

A bar is labelled by the start of its minute (UTC storage; Seoul has no DST and a whole-hour
offset, so UTC minutes are Seoul minutes). Session rules (market/calendar.py): trades in the
open tolerance before the open belong to the open bar; the closing print (at the close, within
the tolerance either side) is its own bar labelled with the close (15:30 on a regular day), as
`Session.minute_bar_starts()` lists it. raw_ticks already quarantined everything else.
"""

from __future__ import annotations

import polars as pl

from stock_pipelines.archive.ticks import UTC_US
from stock_pipelines.market import Session

BARS_SCHEMA = {
    "symbol": pl.String,
    "minute": UTC_US,
    "open": pl.Int64,
    "high": pl.Int64,
    "low": pl.Int64,
    "close": pl.Int64,
    "volume": pl.Int64,
    "trades": pl.UInt32,
    "source": pl.String,
}


def minute_bars(
    ticks: pl.DataFrame | pl.LazyFrame, session: Session, presorted: bool = False
) -> pl.DataFrame:
    """Bars from raw_ticks rows; trades are taken in cum order inside each bar.

    `presorted=True` promises rows already sorted by (symbol, cum), as raw_ticks is written,
    and skips the sort (group_by keeps each group's row order for first/last).
    """
    open_ = pl.lit(session.open).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    close = pl.lit(session.close).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    auction = pl.lit(session.closing_auction_start).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    ts = pl.col("ts")
    minute = pl.when(ts >= auction).then(close).when(ts < open_).then(open_).otherwise(ts.dt.truncate("1m"))
    ordered = ticks.lazy().select("symbol", "ts", "price", "qty", "cum", minute=minute)
    if not presorted:  # raw_ticks is written sorted by (symbol, cum): row order is trade order
        ordered = ordered.sort("symbol", "cum")
    return (
        ordered.group_by("symbol", "minute")
        .agg(
            open=pl.col("price").first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").last(),
            volume=pl.col("qty").sum(),
            trades=pl.len(),
        )
        .with_columns(source=pl.lit("ticks"))
        .sort("symbol", "minute")
        .select(list(BARS_SCHEMA))
        .cast(BARS_SCHEMA)
        # streamed: memory holds the bars, not the day's trades (first/last stay in row order)
        .collect(engine="streaming")
    )
