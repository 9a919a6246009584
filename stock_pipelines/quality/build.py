"""Build and store one day's report: assess, render (HTML with the recent-days trend)
and write summary.json + report.html. Used by the quality_report asset and `stock-pipelines report`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.day import BrokerCheck, DayInputs, DayQuality, assess, judge_sample
from stock_pipelines.quality.day_totals import DayTotals
from stock_pipelines.quality.render import html_page
from stock_pipelines.quality.store import (
    history,
    read_broker_sample,
    read_day_totals,
    read_legacy_broker_check,
    write_report,
)

NOT_SAMPLED = "quality_broker_sample has not run for this day"


def stored_broker_check(inputs: DayInputs, data_dir: Path | None = None) -> BrokerCheck:
    """The day's final bars against the broker sample quality_broker_sample stored: what
    minute_bars_match_broker judges and the report shows (not sampled when none was stored)."""
    sample = read_broker_sample(inputs.day, data_dir)
    if sample is not None:
        return judge_sample(inputs.bars, sample)
    return read_legacy_broker_check(inputs.day, data_dir) or BrokerCheck(False, NOT_SAMPLED)


@dataclass(frozen=True)
class BuiltReport:
    quality: DayQuality
    summary: dict
    summary_path: Path
    html_path: Path


def build_report(
    inputs: DayInputs,
    *,
    recovery_complete: bool,
    config: QualityConfig,
    data_dir: Path | None = None,
) -> BuiltReport:
    """The broker's figures are the ones quality_broker_sample and quality_broker_day_volumes
    stored for the day (no calls are spent twice); without them the report says so."""
    broker = stored_broker_check(inputs, data_dir)
    totals = read_day_totals(inputs.day, data_dir) or DayTotals(
        False, "not checked: quality_broker_day_volumes has not run for this day"
    )
    quality = assess(inputs, recovery_complete=recovery_complete, config=config, broker=broker, totals=totals)
    summary = quality.summary()
    trend = history(inputs.day, quality.coverage.share, config.history_days, data_dir)
    summary["history"] = trend
    summary_path, html_path = write_report(inputs.day, summary, html_page(quality, trend), data_dir)
    summary["html_path"] = str(html_path)
    return BuiltReport(quality, summary, summary_path, html_path)
