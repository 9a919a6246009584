"""One trading day's measures, each computed at most once: what the minute_bars checks judge and
the day's report shows. The broker's figures are the ones quality_broker_sample and
quality_broker_day_volumes stored for the day (no call is spent twice); without them the measures
say so."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import polars as pl

from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.consistency import day_volume, invariant_violations
from stock_pipelines.quality.coverage import Coverage
from stock_pipelines.quality.day import BrokerCheck, DayInputs, DayQuality, judge_sample
from stock_pipelines.quality.day_totals import DayTotals
from stock_pipelines.quality.store import read_broker_sample, read_day_totals, read_legacy_broker_check
from stock_pipelines.quality.trade_completeness import TradeCompleteness, trade_completeness

NOT_SAMPLED = "quality_broker_sample has not run for this day"
NOT_CHECKED = "not checked: quality_broker_day_volumes has not run for this day"


def stored_broker_check(inputs: DayInputs, data_dir: Path | None = None) -> BrokerCheck:
    """The day's final bars against the broker sample quality_broker_sample stored: what
    minute_bars_match_broker judges and the report shows (not sampled when none was stored)."""
    sample = read_broker_sample(inputs.day, data_dir)
    if sample is not None:
        return judge_sample(inputs.bars, sample)
    return read_legacy_broker_check(inputs.day, data_dir) or BrokerCheck(False, NOT_SAMPLED)


class DayMeasures:
    """The measures of `inputs`, computed on first use and kept. `recovery_complete`: the latest
    recovery answered every gap window (its unanswered minutes stay expected otherwise)."""

    def __init__(
        self,
        inputs: DayInputs,
        *,
        recovery_complete: bool,
        data_dir: Path | None = None,
        trades: Callable[[], pl.DataFrame] | None = None,
    ) -> None:
        self.inputs = inputs
        self.recovery_complete = recovery_complete
        self.data_dir = data_dir
        self._load_trades = trades

    @cached_property
    def trades(self) -> pl.DataFrame:
        """The day's trades judged at trade level: what `trades` loads (the archive with the
        recovered trades), read on first use so a run's trade tier has written them by then; the
        archive's ticks when no loader was given."""
        return self.inputs.ticks if self._load_trades is None else self._load_trades()

    @cached_property
    def coverage(self) -> Coverage:
        return self.inputs.coverage(self.recovery_complete)

    @cached_property
    def invariants(self) -> pl.DataFrame:
        return invariant_violations(self.inputs.bars)

    @cached_property
    def totals(self) -> DayTotals:
        return read_day_totals(self.inputs.day, self.data_dir) or DayTotals(False, NOT_CHECKED)

    @cached_property
    def volume(self) -> pl.DataFrame:
        """Per symbol, the day's reported volume against the bars and the ticks (`day_volume`)."""
        totals = self.totals
        return day_volume(
            self.inputs.ticks,
            self.inputs.bars,
            totals.totals if totals.checked else None,
            self.inputs.session.closing_auction_start,
        )

    @cached_property
    def trade_completeness(self) -> TradeCompleteness:
        """The day's trades against the day's volume (`quality.trade_completeness`)."""
        totals = self.totals
        return trade_completeness(
            self.trades,
            totals.totals if totals.checked else None,
            self.inputs.session.closing_auction_start,
        )

    @cached_property
    def broker(self) -> BrokerCheck:
        return stored_broker_check(self.inputs, self.data_dir)

    def quality(self, config: QualityConfig) -> DayQuality:
        """Every measure with the verdicts `config`'s thresholds give."""
        return DayQuality(
            inputs=self.inputs,
            config=config,
            coverage=self.coverage,
            volume=self.volume,
            invariants=self.invariants,
            broker=self.broker,
            totals=self.totals,
            recovery_complete=self.recovery_complete,
            trades=self.trade_completeness,
        )
