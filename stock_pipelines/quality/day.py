"""One trading day's quality, assessed from the lake: the inputs, every measure, and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from stock_pipelines import lake
from stock_pipelines.brokers.model import BAR_SCHEMA, MinuteBarSource
from stock_pipelines.gaps.summary import gaps_frame
from stock_pipelines.market import Session, krx_calendar
from stock_pipelines.quality import trade_level
from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.consistency import DISAGREEMENT_SCHEMA, compare_bars, day_volume
from stock_pipelines.quality.coverage import (
    Coverage,
    compute_coverage,
    gap_windows,
    slots_frame,
    window_minutes,
)
from stock_pipelines.quality.day_totals import DayTotals, at_risk_symbols, day_totals_check
from stock_pipelines.quality.sample import WINDOW_SCHEMA, BrokerSample, take_sample
from stock_pipelines.quality.trade_completeness import TradeCompleteness

TICK_SCHEMA = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "qty": pl.Int64(),
    "cum": pl.Int64(),
    "collector": pl.String(),
}
BLOCKING = ("completeness", "trading_time", "closing_print", "ohlc_invariants", "day_volume", "broker_match")


@dataclass(frozen=True)
class DayInputs:
    day: date
    session: Session
    bars: pl.DataFrame  # minute_bars
    ticks: pl.DataFrame  # raw_ticks: symbol, ts, qty, cum, collector
    gaps: pl.DataFrame  # gap_report
    recovered: pl.DataFrame  # recovered_minute_bars

    def coverage(self, recovery_complete: bool) -> Coverage:
        """Expected and present symbol-minutes of the day (`quality.coverage`)."""
        return compute_coverage(
            self.day,
            self.bars,
            self.ticks,
            self.gaps,
            self.recovered,
            recovery_complete=recovery_complete,
            session=self.session,
        )


def load_day(day: date, data_dir: Path | None = None) -> DayInputs:
    """The lake partitions of `day`; minute_bars must exist, the others may be absent (empty)."""
    session = krx_calendar().session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day")
    bars = lake.read_partition("minute_bars", day, data_dir)

    def optional(asset: str, empty: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
        if not lake.partition_exists(asset, day, data_dir):
            return empty
        scan = lake.scan_partition(asset, day, data_dir)
        return (scan.select(columns) if columns else scan).collect()

    return DayInputs(
        day=day,
        session=session,
        bars=bars,
        ticks=optional("raw_ticks", pl.DataFrame(schema=TICK_SCHEMA), list(TICK_SCHEMA)),
        gaps=optional("gap_report", gaps_frame([])),
        recovered=optional("recovered_minute_bars", pl.DataFrame(schema=BAR_SCHEMA)),
    )


@dataclass
class BrokerCheck:
    sampled: bool
    note: str  # why not sampled, or what was
    calls: int = 0
    windows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WINDOW_SCHEMA))  # UTC
    disagreements: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DISAGREEMENT_SCHEMA))
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.disagreements.height == 0


def judge_sample(bars: pl.DataFrame, sample: BrokerSample) -> BrokerCheck:
    """The final bars against what the broker answered, inside the windows it answered."""
    if not sample.sampled:
        return BrokerCheck(False, sample.note, sample.calls, failed=sample.failed)
    disagreements = compare_bars(bars, sample.bars, sample.windows)
    return BrokerCheck(True, sample.note, sample.calls, sample.windows, disagreements, sample.failed)


def broker_check(
    inputs: DayInputs, source: MinuteBarSource | None, budget: int, now: datetime, unavailable: str = ""
) -> BrokerCheck:
    """Final bars against the broker's REST bars on the day's sample (see quality.sample)."""
    sample = take_sample(
        inputs.day, inputs.session, inputs.ticks, inputs.recovered, inputs.bars,
        source, budget, now, unavailable,
    )
    return judge_sample(inputs.bars, sample)


def day_totals(
    inputs: DayInputs, source: MinuteBarSource | None, budget: int, now: datetime, unavailable: str = ""
) -> DayTotals:
    """The broker's day volume for the day's chosen symbols (see quality.day_totals)."""
    volume = day_volume(inputs.ticks, inputs.bars)
    at_risk = at_risk_symbols(inputs.gaps, inputs.recovered, volume)
    return day_totals_check(inputs.session, volume, at_risk, source, budget, now, unavailable)


@dataclass
class DayQuality:
    inputs: DayInputs
    config: QualityConfig
    coverage: Coverage
    volume: pl.DataFrame
    invariants: pl.DataFrame
    broker: BrokerCheck
    totals: DayTotals
    recovery_complete: bool
    trades: TradeCompleteness | None = None  # the day's trade completeness, when assessed

    @property
    def day(self) -> date:
        return self.inputs.day

    @property
    def volume_disagreements(self) -> pl.DataFrame:
        return self.volume.filter(pl.col("bars_missing") != 0)

    @property
    def tick_shortfalls(self) -> pl.DataFrame:
        """Symbols whose archived trades lack shares of the reported day volume."""
        return self.volume.filter(pl.col("ticks_missing") != 0)

    def verdicts(self) -> dict[str, bool]:
        return {
            "completeness": self.coverage.share >= self.config.error_share,
            "trading_time": self.coverage.outside_trading_time.height == 0,
            "closing_print": not self.coverage.closing_missing,
            "ohlc_invariants": self.invariants.height == 0,
            "day_volume": self.volume_disagreements.height == 0,
            "broker_match": self.broker.passed,
        }

    @property
    def warn(self) -> bool:
        return self.coverage.share < self.config.warn_share

    @property
    def certified(self) -> bool:
        verdicts = self.verdicts()
        return all(verdicts[name] for name in BLOCKING)

    def gap_fills(self) -> pl.DataFrame:
        """Each gap window with what filled its slots: kind, collector, start, end (Seoul),
        symbols, slots, and slot counts by source plus `missing` (slots expected and absent)."""
        windows = gap_windows(self.inputs.gaps)
        schema = {
            "kind": pl.String(),
            "collector": pl.String(),
            "start": pl.Datetime("us", "Asia/Seoul"),
            "end": pl.Datetime("us", "Asia/Seoul"),
            "symbols": pl.Int64(),
            "slots": pl.Int64(),
        }
        if windows.height == 0:
            return pl.DataFrame(schema=schema)
        touched = window_minutes(windows, slots_frame(self.inputs.session))
        sources = self.inputs.bars.select("symbol", "minute", "source")
        missing = self.coverage.expected.filter(~pl.col("present")).select(
            "symbol", "minute", hole=pl.lit(True)
        )
        filled = (
            touched.join(sources, on=["symbol", "minute"], how="left")
            .join(missing, on=["symbol", "minute"], how="left")
            .with_columns(
                filler=pl.when(pl.col("source").is_not_null())
                .then("source")
                .when(pl.col("hole").fill_null(False))
                .then(pl.lit("missing"))
                .otherwise(pl.lit("no_trades"))
            )
        )
        counts = filled.pivot(on="filler", index="gap", values="symbol", aggregate_function="len")
        base = filled.group_by("gap", "kind", "collector").agg(
            start=pl.col("start").min(),
            end=pl.col("end").max(),
            symbols=pl.col("symbol").n_unique().cast(pl.Int64),
            slots=pl.len().cast(pl.Int64),
        )
        per_gap = base.join(counts, on="gap").fill_null(0)
        fillers = [c for c in per_gap.columns if c not in ("gap", *schema)]
        # sequence gaps are one a symbol: gaps of one kind, collector and window are one row
        return (
            per_gap.group_by("kind", "collector", "start", "end")
            .agg(pl.col("symbols", "slots", *fillers).sum().cast(pl.Int64))
            .sort("start", "end", "kind", "collector")
            .with_columns(pl.col("start", "end").dt.convert_time_zone("Asia/Seoul"))
        )

    def summary(self) -> dict:
        cov = self.coverage
        return {
            "date": self.day.isoformat(),
            "certified": self.certified,
            "completeness": cov.share,
            "expected": cov.expected_count,
            "present": cov.present_count,
            "missing": cov.expected_count - cov.present_count,
            "error_share": self.config.error_share,
            "warn_share": self.config.warn_share,
            "warn": self.warn,
            "recovery_complete": self.recovery_complete,
            "by_collector": cov.by_collector.to_dicts(),
            "symbols_with_holes": sorted(set(cov.holes["symbol"].to_list())),
            "holes": cov.holes.height,
            "outside_trading_time": cov.outside_trading_time.height,
            "closing_expected": cov.closing_expected,
            "closing_missing": cov.closing_missing,
            "volume_disagreements": self.volume_disagreements.height,
            "day_totals_checked": self.totals.checked,
            "day_totals_note": self.totals.note,
            "day_totals_calls": self.totals.calls,
            "tick_shortfall_symbols": self.tick_shortfalls.height,
            "ohlc_violations": self.invariants.height,
            "broker_sampled": self.broker.sampled,
            "broker_note": self.broker.note,
            "broker_calls": self.broker.calls,
            "broker_disagreements": self.broker.disagreements.height,
            "checks": self.verdicts(),
            "bars_by_source": dict(self.inputs.bars.group_by("source").len().sort("source").iter_rows()),
            **({"trade_level": trade_level.summary(self.trades)} if self.trades is not None else {}),
        }
