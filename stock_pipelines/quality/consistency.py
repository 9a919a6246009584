"""Consistency of a day's minute bars: day volume against the exchange's cumulative volume, OHLC
invariants, one bar per symbol-minute, and bars against the broker's REST bars (ground truth)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

OHLCV = ["open", "high", "low", "close", "volume"]
DISAGREEMENT_SCHEMA = {
    "symbol": pl.String(),
    "minute": pl.Datetime("us", "UTC"),
    "source": pl.String(),
    "field": pl.String(),
    "ours": pl.Int64(),
    "truth": pl.Int64(),
}


def day_volume(
    ticks: pl.DataFrame,
    bars: pl.DataFrame,
    broker: pl.DataFrame | None = None,
    closing_auction_start: datetime | None = None,
) -> pl.DataFrame:
    """Per symbol: the exchange's reported day volume, the shares in the archived trades, and the
    shares in the final bars.

    The reported volume is the broker's day total where it was fetched (`broker`: symbol,
    broker_volume), else the last cumulative volume archived (`reported_by` says which).
    `ticks_missing` > 0: trades the archive lacks; `bars_missing` != 0: the final bars do not
    account for the day's volume (a hole or a wrong bar); `cum_behind_broker` > 0: trades after
    the last archived one (null where the broker was not asked). A symbol with neither a broker
    total nor an archived trade has no reported volume (null): nothing to judge.

    With `closing_auction_start`: a symbol whose last archived trade is its closing print (the
    only trade of the closing auction, the session's last) has its regular-session volume in
    that print's cum; a broker figure above it counts volume after the session (after-hours
    trading, which this archive does not record) and is not used (`broker_after_close`).
    Sorted by symbol.
    """
    schema = {
        "symbol": pl.String(),
        "last_cum": pl.Int64(),
        "tick_volume": pl.Int64(),
        "trades": pl.Int64(),
        "last_ts": pl.Datetime("us", "UTC"),
    }
    seen = (
        ticks.group_by("symbol")
        .agg(
            last_cum=pl.col("cum").max(),
            tick_volume=pl.col("qty").sum(),
            trades=pl.len(),
            last_ts=pl.col("ts").max(),
        )
        .cast({"last_cum": pl.Int64, "tick_volume": pl.Int64, "trades": pl.Int64})
        if ticks.height
        else pl.DataFrame(schema=schema)
    )
    closing_print = (
        pl.col("last_ts") >= pl.lit(closing_auction_start.astimezone(UTC))
        if closing_auction_start is not None
        else pl.lit(False)
    )
    bar_volume = bars.group_by("symbol").agg(bar_volume=pl.col("volume").sum().cast(pl.Int64))
    totals = (
        broker.select("symbol", pl.col("broker_volume").cast(pl.Int64))
        if broker is not None
        else pl.DataFrame(schema={"symbol": pl.String(), "broker_volume": pl.Int64()})
    )
    use_broker = pl.col("broker_volume").is_not_null() & ~pl.col("broker_after_close")
    return (
        seen.join(bar_volume, on="symbol", how="full", coalesce=True)
        .join(totals, on="symbol", how="full", coalesce=True)
        .with_columns(pl.col("last_cum", "tick_volume", "bar_volume", "trades").fill_null(0))
        .with_columns(
            broker_after_close=(closing_print & (pl.col("broker_volume") > pl.col("last_cum"))).fill_null(
                False
            )
        )
        .with_columns(
            # a symbol with bars but no archived trade (all recovered) has no cum to judge by: null
            reported=pl.when(use_broker).then("broker_volume").when(pl.col("trades") > 0).then("last_cum"),
            reported_by=pl.when(use_broker)
            .then(pl.lit("broker"))
            .when(pl.col("trades") > 0)
            .then(pl.lit("cum")),
            cum_behind_broker=pl.when(~pl.col("broker_after_close")).then(
                pl.col("broker_volume") - pl.col("last_cum")
            ),
        )
        .with_columns(
            ticks_missing=pl.col("reported") - pl.col("tick_volume"),
            bars_missing=pl.col("reported") - pl.col("bar_volume"),
        )
        .drop("last_ts")
        .sort("symbol")
    )


def invariant_violations(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars breaking low <= open, close <= high (so low <= high), volume >= 0, no null price,
    or repeating a (symbol, minute): symbol, minute, source, rule."""
    c = pl.col
    rules = {
        "null_ohlcv": pl.any_horizontal(c(k).is_null() for k in OHLCV),
        "low_above_open_or_close": c("low") > pl.min_horizontal("open", "close"),
        "high_below_open_or_close": c("high") < pl.max_horizontal("open", "close"),
        "negative_volume": c("volume") < 0,
        "duplicate_symbol_minute": pl.len().over("symbol", "minute") > 1,
    }
    found = [
        bars.filter(rule.fill_null(False)).select("symbol", "minute", "source", rule=pl.lit(name))
        for name, rule in rules.items()
    ]
    return pl.concat(found).sort("symbol", "minute", "rule")


def compare_bars(ours: pl.DataFrame, truth: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """Every disagreement between our bars and the broker's inside the fetched windows.

    `windows`: symbol, start, end (UTC) that the broker answered for. One row per (symbol, minute,
    field): field is one of OHLCV, or `bar` when only one side has a bar (ours/truth null).
    """

    def inside(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.join(windows.select("symbol", "start", "end"), on="symbol")
            .filter((pl.col("minute") >= pl.col("start")) & (pl.col("minute") < pl.col("end")))
            .select(
                "symbol",
                "minute",
                *[pl.col(k).cast(pl.Int64) for k in OHLCV],
                *(["source"] if "source" in frame.columns else []),
            )
            .unique(subset=["symbol", "minute"], keep="first")
        )

    mine = inside(ours)
    theirs = inside(truth).drop("source", strict=False)
    joined = mine.join(theirs, on=["symbol", "minute"], how="full", coalesce=True, suffix="_truth")
    schema = DISAGREEMENT_SCHEMA
    one_sided = joined.filter(pl.col("open").is_null() | pl.col("open_truth").is_null()).select(
        "symbol",
        "minute",
        "source",
        field=pl.lit("bar"),
        ours=pl.col("volume"),
        truth=pl.col("volume_truth"),
    )
    both = joined.filter(pl.col("open").is_not_null() & pl.col("open_truth").is_not_null())
    fields = [
        both.filter(pl.col(k) != pl.col(f"{k}_truth")).select(
            "symbol", "minute", "source", field=pl.lit(k), ours=pl.col(k), truth=pl.col(f"{k}_truth")
        )
        for k in OHLCV
    ]
    return pl.concat(
        [pl.DataFrame(schema=schema), one_sided.cast(schema), *(f.cast(schema) for f in fields)]
    ).sort("symbol", "minute", "field")
