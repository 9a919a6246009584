"""Build and store one day's report: its measures' verdicts, render (HTML with the recent-days trend)
and write summary.json + report.html. Used by the quality_report asset and `stock-pipelines report`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.day import DayQuality
from stock_pipelines.quality.measures import DayMeasures
from stock_pipelines.quality.render import html_page
from stock_pipelines.quality.store import history, write_report


@dataclass(frozen=True)
class BuiltReport:
    quality: DayQuality
    summary: dict
    summary_path: Path
    html_path: Path


def build_report(measures: DayMeasures, config: QualityConfig) -> BuiltReport:
    """The report of the day `measures` were taken of, from those measures (`quality.measures`)."""
    quality = measures.quality(config)
    inputs, data_dir = measures.inputs, measures.data_dir
    summary = quality.summary()
    trend = history(inputs.day, quality.coverage.share, config.history_days, data_dir)
    summary["history"] = trend
    summary_path, html_path = write_report(inputs.day, summary, html_page(quality, trend), data_dir)
    summary["html_path"] = str(html_path)
    return BuiltReport(quality, summary, summary_path, html_path)
