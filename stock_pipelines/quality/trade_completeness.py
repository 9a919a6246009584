"""Trade completeness per symbol and day: the share of the day's volume whose trades are present,
proven from the cumulative-volume chain.

A trade with quantity `qty` and cumulative volume `cum` holds the day's shares (cum - qty, cum].
`cum` is the exchange's per-symbol day counter, the same at every broker, so `(symbol, cum)`
identifies a trade: sorted by `cum`, the chain is whole when every trade's `cum - qty` is the
previous trade's `cum` and the first trade's is 0 (the start of the day). Every break is a
missing range of shares, (previous cum, cum - qty].

The chain cannot show trades after the last one present. The day's volume closes it:
- the closing print (the closing auction's single trade, the session's last) carries the
  regular session's day volume as its `cum` (KRX: one print at the close, no trade after it);
- otherwise the broker's day total (`quality.day_totals`, the REST daily chart), when fetched;
- otherwise the day's volume is unknown: the symbol's share is null (unproven), never assumed
  complete.

Bad input is named per symbol, not raised (`PROBLEMS`); such a symbol is never complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

WARN_SHARE = 0.9999  # below this share of the day's volume a symbol (or the day) is incomplete
TRADE_COLUMNS = ["symbol", "ts", "qty", "cum"]
PROBLEMS = {
    "null_values": "a trade without symbol, qty or cum",
    "qty_not_positive": "a trade with qty <= 0",
    "conflicting_duplicate": "the same cum twice with different qty",
    "qty_inconsistent": "cum - qty below the previous trade's cum (or below 0): the trades overlap",
    "cum_decreasing": "a higher cum printed in an earlier second than a lower one",
    "cum_above_day_total": "a cum above the day's volume (broker total or closing print)",
}
SYMBOL_SCHEMA = {
    "symbol": pl.String(),
    "trades": pl.Int64(),  # distinct cums present
    "duplicates": pl.Int64(),  # rows repeating a cum, counted once
    "volume_present": pl.Int64(),
    "last_cum": pl.Int64(),
    "day_volume": pl.Int64(),  # null: unknown
    "day_volume_from": pl.String(),  # closing_print, broker, or null
    "share": pl.Float64(),  # volume_present / day_volume; null when the day volume is unknown
    "missing_ranges": pl.Int64(),
    "missing_volume": pl.Int64(),  # with an unknown day volume: the chain's breaks only
    "problem": pl.String(),  # PROBLEMS' names, comma-separated; null when none
}
RANGE_SCHEMA = {
    "symbol": pl.String(),
    "after_cum": pl.Int64(),  # the range is the shares (after_cum, to_cum]
    "to_cum": pl.Int64(),
    "volume": pl.Int64(),
    "where": pl.String(),  # start (before the first trade present), middle, end (after the last)
}


@dataclass(frozen=True)
class TradeCompleteness:
    """One day's trade completeness: `symbols` (SYMBOL_SCHEMA, sorted by symbol) and the missing
    `ranges` (RANGE_SCHEMA)."""

    symbols: pl.DataFrame
    ranges: pl.DataFrame
    warn_share: float = WARN_SHARE
    unattributed: int = 0  # rows without a symbol: counted here, in no symbol's figures

    @property
    def proven(self) -> pl.DataFrame:
        """Symbols with a known day volume and no problem."""
        return self.symbols.filter(pl.col("share").is_not_null() & pl.col("problem").is_null())

    @property
    def complete(self) -> list[str]:
        """Symbols whose every share of the day's volume is present, proven."""
        return self.proven.filter(pl.col("missing_volume") == 0)["symbol"].to_list()

    @property
    def below(self) -> pl.DataFrame:
        """Symbols with a known day volume under `warn_share` of it: symbol, share."""
        return self.symbols.filter(pl.col("share") < self.warn_share).select("symbol", "share")

    @property
    def unproven(self) -> list[str]:
        """Symbols whose day volume is unknown: their tail cannot be proven present."""
        return self.symbols.filter(pl.col("day_volume").is_null())["symbol"].to_list()

    @property
    def with_problems(self) -> pl.DataFrame:
        return self.symbols.filter(pl.col("problem").is_not_null()).select("symbol", "problem")

    @property
    def bar_level(self) -> pl.DataFrame:
        """Symbols not complete at trade level (below the share, unproven or with a problem),
        whose day is only as good as its bars: symbol, share (null: unknown), why."""
        return (
            self.symbols.filter(
                (pl.col("share") < self.warn_share)
                | pl.col("share").is_null()
                | pl.col("problem").is_not_null()
            )
            .with_columns(
                why=pl.when(pl.col("problem").is_not_null())
                .then(pl.col("problem"))
                .when(pl.col("day_volume").is_null())
                .then(pl.lit("day volume unknown"))
                .otherwise(pl.lit("trades missing"))
            )
            .select("symbol", "share", "why")
        )

    @property
    def overall_share(self) -> float | None:
        """Present over day volume, summed over the symbols whose day volume is known; None when
        no symbol's is (1.0 when every known day volume is 0)."""
        known = self.symbols.filter(pl.col("day_volume").is_not_null())
        if known.height == 0:
            return None
        total = int(known["day_volume"].sum())
        return int(known["volume_present"].sum()) / total if total else 1.0

    @property
    def day_complete(self) -> bool:
        """The day is complete at trade level: every symbol proven at `warn_share` or more, and
        the whole day too."""
        share = self.overall_share
        return share is not None and share >= self.warn_share and self.bar_level.height == 0

    def totals(self) -> dict:
        """The day's figures, plain values (for metadata and summary.json)."""
        known = self.symbols.filter(pl.col("day_volume").is_not_null())
        return {
            "day_complete": self.day_complete,
            "overall_share": self.overall_share,
            "warn_share": self.warn_share,
            "symbols": self.symbols.height,
            "symbols_complete": len(self.complete),
            "symbols_below": self.below.height,
            "symbols_unproven": len(self.unproven),
            "symbols_with_problems": self.with_problems.height,
            "trades_present": int(self.symbols["trades"].sum()),
            "duplicates": int(self.symbols["duplicates"].sum()),
            "unattributed_rows": self.unattributed,
            "volume_present": int(self.symbols["volume_present"].sum()),
            "day_volume_known": int(known["day_volume"].sum()),
            "missing_ranges": self.ranges.height,
            "missing_volume": int(self.symbols["missing_volume"].sum()),
        }


def _chain(trades: pl.DataFrame, closing_auction_start: datetime | None) -> pl.DataFrame:
    """One row per (symbol, cum) in cum order, with its link to the previous trade."""
    by_cum = trades.group_by("symbol", "cum").agg(
        qty=pl.col("qty").first(),
        ts=pl.col("ts").min(),
        copies=pl.len(),
        qty_variants=pl.col("qty").n_unique(),
    )
    previous = pl.col("cum").shift(1, fill_value=0).over("symbol")
    previous_second = pl.col("second").shift(1).over("symbol")
    start = pl.col("cum") - pl.col("qty").clip(lower_bound=0)  # a qty <= 0 proves no share present
    closing = (
        pl.col("ts") >= pl.lit(closing_auction_start.astimezone(UTC))
        if closing_auction_start is not None
        else pl.lit(False)
    )
    return (
        by_cum.sort("symbol", "cum")
        .with_columns(second=pl.col("ts").dt.truncate("1s"))
        .with_columns(previous=previous, previous_second=previous_second)
        .with_columns(
            # shares this trade proves present: its own, less any overlap with the one before
            present=(pl.col("cum") - pl.max_horizontal(start, pl.col("previous"))).clip(lower_bound=0),
            gap=start - pl.col("previous"),
            decreasing=(pl.col("second") < pl.col("previous_second")).fill_null(False),
            closing=closing,
        )
    )


def _problems(flags: dict[str, pl.Expr]) -> pl.Expr:
    names = [pl.when(flag).then(pl.lit(name)) for name, flag in flags.items()]
    joined = pl.concat_str(names, separator=", ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def trade_completeness(
    trades: pl.DataFrame,
    day_totals: pl.DataFrame | None = None,
    closing_auction_start: datetime | None = None,
    warn_share: float = WARN_SHARE,
) -> TradeCompleteness:
    """The completeness of a day's `trades` (symbol, ts, qty, cum; any order, duplicates allowed)
    against the day's volume: the closing print's cum where present (trades at or after
    `closing_auction_start`), else `day_totals` (symbol, broker_volume) where given.

    A symbol in `day_totals` with no trade present misses its whole day volume (when that is not 0)."""
    absent = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if absent:
        raise ValueError(f"trades lack column(s) {', '.join(absent)}; need {', '.join(TRADE_COLUMNS)}")
    trades = trades.select(
        pl.col("symbol").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
        pl.col("qty", "cum").cast(pl.Int64),
    )
    null_rows = trades.filter(pl.any_horizontal(pl.col("symbol", "qty", "cum").is_null()))
    null_symbols = null_rows.filter(pl.col("symbol").is_not_null())["symbol"].unique().to_list()
    chain = _chain(trades.drop_nulls(["symbol", "qty", "cum"]), closing_auction_start)

    per_symbol = chain.group_by("symbol").agg(
        trades=pl.len().cast(pl.Int64),
        duplicates=(pl.col("copies") - 1).sum().cast(pl.Int64),
        volume_present=pl.col("present").sum().cast(pl.Int64),
        last_cum=pl.col("cum").max(),
        closing_cum=pl.col("cum").filter(pl.col("closing")).max(),
        chain_ranges=(pl.col("gap") > 0).sum().cast(pl.Int64),
        chain_missing=pl.col("gap").clip(lower_bound=0).sum().cast(pl.Int64),
        qty_not_positive=(pl.col("qty") <= 0).any(),
        conflicting_duplicate=(pl.col("qty_variants") > 1).any(),
        qty_inconsistent=(pl.col("gap") < 0).any(),
        cum_decreasing=pl.col("decreasing").any(),
    )
    broker = (
        day_totals.select(pl.col("symbol").cast(pl.String), pl.col("broker_volume").cast(pl.Int64))
        if day_totals is not None
        else pl.DataFrame(schema={"symbol": pl.String(), "broker_volume": pl.Int64()})
    )
    # a symbol the broker reports without trades present, nothing traded: not a symbol of the day
    broker = broker.filter(
        (pl.col("broker_volume") > 0) | pl.col("symbol").is_in(per_symbol["symbol"].implode())
    )
    joined = (
        per_symbol.join(broker, on="symbol", how="full", coalesce=True)
        .with_columns(
            pl.col(
                "trades", "duplicates", "volume_present", "last_cum", "chain_ranges", "chain_missing"
            ).fill_null(0),
            pl.col(
                "qty_not_positive", "conflicting_duplicate", "qty_inconsistent", "cum_decreasing"
            ).fill_null(False),
        )
        .with_columns(
            day_volume=pl.coalesce("closing_cum", "broker_volume"),
            day_volume_from=pl.when(pl.col("closing_cum").is_not_null())
            .then(pl.lit("closing_print"))
            .when(pl.col("broker_volume").is_not_null())
            .then(pl.lit("broker")),
        )
        .with_columns(tail=(pl.col("day_volume") - pl.col("last_cum")).clip(lower_bound=0))
    )
    problems = _problems(
        {
            "null_values": pl.col("symbol").is_in(pl.Series(null_symbols, dtype=pl.String).implode()),
            "qty_not_positive": pl.col("qty_not_positive"),
            "conflicting_duplicate": pl.col("conflicting_duplicate"),
            "qty_inconsistent": pl.col("qty_inconsistent"),
            "cum_decreasing": pl.col("cum_decreasing"),
            "cum_above_day_total": (pl.col("last_cum") > pl.col("day_volume")).fill_null(False),
        }
    )
    symbols = joined.with_columns(
        share=pl.when(pl.col("day_volume") > 0)
        .then(pl.col("volume_present") / pl.col("day_volume"))
        .when(pl.col("day_volume") == 0)
        .then(pl.lit(1.0)),
        missing_ranges=pl.col("chain_ranges") + (pl.col("tail") > 0).fill_null(False).cast(pl.Int64),
        missing_volume=pl.col("chain_missing") + pl.col("tail").fill_null(0),
        problem=problems,
    ).select(
        [pl.col(name).cast(dtype) for name, dtype in SYMBOL_SCHEMA.items()]
    ).sort("symbol")

    chain_ranges = chain.filter(pl.col("gap") > 0).select(
        "symbol",
        after_cum="previous",
        to_cum=pl.col("previous") + pl.col("gap"),
        volume="gap",
        where=pl.when(pl.col("previous") == 0).then(pl.lit("start")).otherwise(pl.lit("middle")),
    )
    tails = joined.filter(pl.col("tail") > 0).select(
        "symbol",
        after_cum="last_cum",
        to_cum="day_volume",
        volume="tail",
        where=pl.when(pl.col("last_cum") == 0).then(pl.lit("start")).otherwise(pl.lit("end")),
    )
    ranges = pl.concat(
        [pl.DataFrame(schema=RANGE_SCHEMA), chain_ranges.cast(RANGE_SCHEMA), tails.cast(RANGE_SCHEMA)]
    ).sort("symbol", "after_cum")
    unattributed = null_rows.filter(pl.col("symbol").is_null()).height
    return TradeCompleteness(symbols, ranges, warn_share, unattributed)
