"""Completeness of a day's minute bars: the share of expected symbol-minutes that are present.

A symbol-minute (a bar slot of `Session.minute_bar_starts()`: every continuous-trading minute
and the closing print at the close) is EXPECTED when there is evidence the exchange had trades
for the symbol in it (docs/quality.md has the full definition):

1. a bar is present for it in minute_bars (ticks, another archive, or broker REST);
2. cumulative-volume continuity: between two consecutive archived trades of a symbol with
   `previous cum + qty != cum` (and before a first trade with `cum != qty`) trades were missed;
   every slot from the previous trade's bar to this trade's bar, both included, may hold them;
3. gap windows (gap_report): every slot a gap window touches, for the gap's symbols.

Evidence 2 and 3 is only "may": inside a window the broker's REST answered for, the broker is
ground truth and such slots are expected only if a bar exists. A window counts as answered when
recovered_minute_bars holds a REST bar of that symbol in it, or when the recovery reported every
window recovered (`recovery_complete`). Without REST the expected set is an upper bound, so the
share is a lower bound: completeness is never overstated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from stock_pipelines.gaps.sequence import sequence_gap_frame
from stock_pipelines.market import Session, krx_calendar
from stock_pipelines.recovery.bars import gaps_from_frame
from stock_pipelines.recovery.plan import minute_window

UTC_US = pl.Datetime("us", "UTC")
PAIR = {"symbol": pl.String(), "minute": UTC_US}
ONE_MINUTE = pl.duration(minutes=1)


@dataclass(frozen=True)
class Coverage:
    expected: pl.DataFrame  # symbol, minute (UTC), evidence (bar | continuity | gap), present (bool)
    by_collector: pl.DataFrame  # collector, symbols, expected, present, missing, share
    holes: pl.DataFrame  # symbol, start, end (Asia/Seoul), minutes, evidence
    outside_trading_time: pl.DataFrame  # bars whose minute is not a bar slot of the session
    closing_expected: int  # symbols whose closing print is expected
    closing_missing: list[str]  # ... and is not there

    @property
    def expected_count(self) -> int:
        return self.expected.height

    @property
    def present_count(self) -> int:
        return int(self.expected["present"].sum()) if self.expected.height else 0

    @property
    def share(self) -> float:
        """Present / expected; 1.0 for a day with nothing expected (nothing is missing)."""
        return self.present_count / self.expected_count if self.expected_count else 1.0


def utc(instant) -> pl.Expr:
    return pl.lit(instant).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def bar_label(ts: pl.Expr, session: Session) -> pl.Expr:
    """The bar slot a trade time belongs to: the rules of archive.bars (open tolerance -> the open
    bar, the closing auction -> the bar at the close)."""
    ts = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    return (
        pl.when(ts >= utc(session.closing_auction_start))
        .then(utc(session.close))
        .when(ts < utc(session.open))
        .then(utc(session.open))
        .otherwise(ts.dt.truncate("1m"))
    )


def slots_frame(session: Session) -> pl.DataFrame:
    """Bar slots with the stretch of trading time each one holds (the close bar: the auction)."""
    starts = session.minute_bar_starts()
    frame = pl.DataFrame({"minute": starts}).with_columns(
        pl.col("minute").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    )
    close = utc(session.close)
    return frame.with_columns(
        slot=pl.int_range(pl.len(), dtype=pl.Int32),
        span_start=pl.when(pl.col("minute") == close)
        .then(utc(session.closing_auction_start))
        .otherwise(pl.col("minute")),
        span_end=pl.col("minute") + ONE_MINUTE,
    )


def gap_windows(gaps: pl.DataFrame) -> pl.DataFrame:
    """gap_report rows -> one row per (gap, symbol): gap (row index), kind, collector, symbol, start, end (UTC),
    the minute window the recovery plan fetches for it (recovery.plan.minute_window)."""
    rows = []
    for index, gap in enumerate(gaps_from_frame(gaps)):
        start, end = minute_window(gap)
        rows.extend((index, gap.kind.value, gap.collector, symbol, start, end) for symbol in gap.symbols)
    schema = {
        "gap": pl.Int64(),
        "kind": pl.String(),
        "collector": pl.String(),
        "symbol": pl.String(),
        "start": pl.Datetime("us", "Asia/Seoul"),
        "end": pl.Datetime("us", "Asia/Seoul"),
    }
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("start", "end").dt.convert_time_zone("UTC")
    )


def continuity_minutes(ticks: pl.DataFrame, day: date, session: Session, slots: pl.DataFrame) -> pl.DataFrame:
    if ticks.height == 0:
        return pl.DataFrame(schema=PAIR)
    jumps = sequence_gap_frame(ticks.select("symbol", "ts", "qty", "cum"), day)
    if jumps.height == 0:
        return pl.DataFrame(schema=PAIR)
    spans = jumps.select(
        "symbol", first=bar_label(pl.col("start"), session), last=bar_label(pl.col("end"), session)
    )
    return (
        spans.join_where(
            slots.select("minute"), pl.col("minute") >= pl.col("first"), pl.col("minute") <= pl.col("last")
        )
        .select("symbol", "minute")
        .unique()
    )


def window_minutes(windows: pl.DataFrame, slots: pl.DataFrame) -> pl.DataFrame:
    """(symbol, minute) of every slot a window [start, end) touches, with the window's columns."""
    if windows.height == 0:
        return pl.DataFrame(schema={**PAIR, "start": UTC_US, "end": UTC_US})
    return windows.join_where(
        slots.select("minute", "span_start", "span_end"),
        pl.col("span_start") < pl.col("end"),
        pl.col("span_end") > pl.col("start"),
    ).drop("span_start", "span_end")


def answered_minutes(
    windows: pl.DataFrame, recovered: pl.DataFrame, slots: pl.DataFrame, recovery_complete: bool
) -> pl.DataFrame:
    """Slots inside gap windows for which the broker (or, when the recovery reported every window
    recovered, the recovery as a whole) is ground truth: expected there only if a bar exists."""
    touched = window_minutes(windows, slots)
    if recovery_complete or touched.height == 0:
        return touched.select("symbol", "minute").unique()
    rest = recovered.filter(pl.col("source").str.starts_with("rest_")).select("symbol", rest_minute="minute")
    fetched = (
        windows.join(rest, on="symbol")
        .filter((pl.col("rest_minute") >= pl.col("start")) & (pl.col("rest_minute") < pl.col("end")))
        .select("symbol", "start", "end")
        .unique()
    )
    return (
        touched.join(fetched, on=["symbol", "start", "end"], how="semi").select("symbol", "minute").unique()
    )


def compute_coverage(
    day: date,
    bars: pl.DataFrame,
    ticks: pl.DataFrame,
    gaps: pl.DataFrame,
    recovered: pl.DataFrame,
    *,
    recovery_complete: bool,
    session: Session | None = None,
) -> Coverage:
    session = session or krx_calendar().session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day")
    slots = slots_frame(session)
    in_slots = bars.join(slots.select("minute"), on="minute", how="semi")
    outside = bars.join(slots.select("minute"), on="minute", how="anti")
    present = in_slots.select("symbol", "minute").unique().with_columns(evidence=pl.lit("bar"))
    windows = gap_windows(gaps)
    maybe = pl.concat(
        [
            continuity_minutes(ticks, day, session, slots).with_columns(evidence=pl.lit("continuity")),
            window_minutes(windows, slots).select("symbol", "minute").with_columns(evidence=pl.lit("gap")),
        ]
    ).unique(subset=["symbol", "minute"], keep="first", maintain_order=True)
    answered = answered_minutes(windows, recovered, slots, recovery_complete)
    unexplained = maybe.join(answered, on=["symbol", "minute"], how="anti").join(
        present, on=["symbol", "minute"], how="anti"
    )
    expected = pl.concat(
        [present.with_columns(present=pl.lit(True)), unexplained.with_columns(present=pl.lit(False))]
    )
    close = slots["minute"][-1]
    closing = expected.filter(pl.col("minute") == close)
    return Coverage(
        expected=expected,
        by_collector=_by_collector(expected, ticks, windows),
        holes=_holes(expected, slots),
        outside_trading_time=outside,
        closing_expected=closing.height,
        closing_missing=closing.filter(~pl.col("present"))["symbol"].sort().to_list(),
    )


def universes(ticks: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """(collector, symbol): the symbols a collector archived that day, plus those of its downtime
    and silence gaps (sequence gaps are found on the merged archive, not one collector's)."""
    own = (
        ticks.lazy().select("collector", "symbol").unique().collect()
        if ticks.height
        else pl.DataFrame(schema={"collector": pl.String(), "symbol": pl.String()})
    )
    lost = windows.filter(pl.col("kind") != "sequence").select("collector", "symbol")
    return pl.concat([own, lost]).unique()


def _by_collector(expected: pl.DataFrame, ticks: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    per_symbol = expected.group_by("symbol").agg(
        expected=pl.len().cast(pl.Int64), present=pl.col("present").sum().cast(pl.Int64)
    )
    members = pl.concat(
        [universes(ticks, windows), per_symbol.select(pl.lit("(all)").alias("collector"), "symbol")]
    )
    return (
        members.join(per_symbol, on="symbol", how="left")
        .group_by("collector")
        .agg(
            symbols=pl.col("symbol").n_unique().cast(pl.Int64),
            expected=pl.col("expected").sum().cast(pl.Int64),
            present=pl.col("present").sum().cast(pl.Int64),
        )
        .with_columns(missing=pl.col("expected") - pl.col("present"))
        .with_columns(
            share=pl.when(pl.col("expected") > 0).then(pl.col("present") / pl.col("expected")).otherwise(1.0)
        )
        .sort(pl.col("collector") == "(all)", "collector")
    )


def _holes(expected: pl.DataFrame, slots: pl.DataFrame) -> pl.DataFrame:
    """Missing symbol-minutes as runs of consecutive slots: symbol, start, end (Seoul), minutes, evidence."""
    missing = (
        expected.filter(~pl.col("present"))
        .join(slots.select("minute", "slot"), on="minute")
        .sort("symbol", "slot")
    )
    return (
        missing.with_columns(
            run=(pl.col("slot").diff().over("symbol").fill_null(1) != 1).cum_sum().over("symbol")
        )
        .group_by("symbol", "run", maintain_order=True)
        .agg(
            start=pl.col("minute").first(),
            end=pl.col("minute").last() + ONE_MINUTE,
            minutes=pl.len().cast(pl.Int64),
            evidence=pl.col("evidence").unique().sort().str.join("+"),
        )
        .drop("run")
        .with_columns(pl.col("start", "end").dt.convert_time_zone("Asia/Seoul"))
    )
