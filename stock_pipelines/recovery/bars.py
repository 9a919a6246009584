"""Recovered bars, and the final minute bars: one bar per symbol-minute, with its source.

Final rule: inside a gap's minutes the broker's bar wins (it saw every trade of the minute;
the archive may have seen only some), unless the tick-derived bar equals it (same OHLCV: the
archive was complete there, as at the edge minutes of an outage, and its bar keeps its `ticks`
source); everywhere else the tick-derived bar stands, even where a fetch that spanned two gaps
returned the minutes between them (`bars_within` drops those).
A tier-1 bar (another collector's archive) is a tick bar already; it is labelled as such
when it fills another collector's gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.gaps.summary import gaps_frame

SOURCE_PRIORITY = {"rest_kis": 0, "rest_kiwoom": 0, "ticks_other_archive": 1, "ticks": 2}


def gaps_from_frame(frame: pl.DataFrame) -> list[Gap]:
    """The inverse of `gaps.summary.gaps_frame` (gap_report's Parquet back into Gap objects)."""
    return [
        Gap(GapKind(row["kind"]), row["collector"], row["start"], row["end"], tuple(row["symbols"]), row["reason"])
        for row in frame.iter_rows(named=True)
    ]


def empty_gaps_frame() -> pl.DataFrame:
    return gaps_frame([])


def tier1_bars(tick_bars: pl.DataFrame, coverage: dict[str, list[tuple]]) -> pl.DataFrame:
    """Tick bars of covered windows (whole minutes only), relabelled as another archive's."""
    rows = [
        (symbol, start, end) for symbol, windows in coverage.items() for start, end in windows
    ]
    if not rows or tick_bars.height == 0:
        return pl.DataFrame(schema=BAR_SCHEMA)
    windows = pl.DataFrame(
        rows, schema={"symbol": pl.String, "start": pl.Datetime("us", "Asia/Seoul"), "end": pl.Datetime("us", "Asia/Seoul")},
        orient="row",
    ).with_columns(pl.col("start", "end").dt.convert_time_zone("UTC"))
    minute_end = pl.col("minute") + pl.duration(minutes=1)
    return (
        tick_bars.join(windows, on="symbol")
        .filter((pl.col("minute") >= pl.col("start")) & (minute_end <= pl.col("end")))
        .drop("start", "end")
        .unique(subset=["symbol", "minute"], keep="first", maintain_order=True)
        .with_columns(source=pl.lit("ticks_other_archive"))
        .select(list(BAR_SCHEMA))
        .cast(BAR_SCHEMA)
    )


def bars_within(bars: pl.DataFrame, windows: Mapping[str, Sequence[tuple]]) -> pl.DataFrame:
    """The bars whose minute lies inside one of its symbol's windows [start, end)."""
    rows = [(symbol, start, end) for symbol, spans in windows.items() for start, end in spans]
    if not rows or bars.height == 0:
        return bars.clear()
    spans = pl.DataFrame(
        rows, schema={"symbol": pl.String, "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")},
        orient="row",
    )
    inside = (
        bars.select("symbol", "minute")
        .join(spans, on="symbol")
        .filter((pl.col("minute") >= pl.col("start")) & (pl.col("minute") < pl.col("end")))
        .select("symbol", "minute")
        .unique()
    )
    return bars.join(inside, on=["symbol", "minute"], how="semi", maintain_order="left")


OHLCV = ["symbol", "minute", "open", "high", "low", "close", "volume"]


def final_bars(tick_bars: pl.DataFrame, recovered: Iterable[pl.DataFrame]) -> pl.DataFrame:
    frames = [f.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA) for f in (*recovered, tick_bars)]
    stacked = pl.concat(frames).with_columns(
        priority=pl.col("source").replace_strict(SOURCE_PRIORITY, default=9, return_dtype=pl.Int8)
    )
    broker = stacked.filter(pl.col("priority") == 0).select(OHLCV).unique().with_columns(confirmed=pl.lit(True))
    return (
        stacked.join(broker, on=OHLCV, how="left")
        .with_columns(
            priority=pl.when((pl.col("source") == "ticks") & pl.col("confirmed").fill_null(False))
            .then(pl.lit(-1, pl.Int8))
            .otherwise(pl.col("priority"))
        )
        .drop("confirmed")
        .sort("symbol", "minute", "priority")
        .unique(subset=["symbol", "minute"], keep="first", maintain_order=True)
        .drop("priority")
    )
