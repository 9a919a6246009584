"""benchmarks/backfill_month.py's own code path on a small month: its figures against the truth
of the simulated days (trades and minute bars counted from the simulator, not the pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stock_pipelines.sim.day import SimDay

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def backfill_month(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the workers, spawned, import it by name too
    import backfill_month

    return backfill_month


def test_a_small_month_backfilled_both_ways_reports_the_simulated_truth(backfill_month, tmp_path):
    days, symbols = 3, 5
    summary = backfill_month.benchmark(days, symbols, tmp_path, repeat=1)

    month = backfill_month.month_days(days)
    assert len(month) == days and month[-1] <= backfill_month.LAST_DAY
    sims = [SimDay(day, seed=11, symbols=symbols) for day in month]
    trades = sum(len(sim.build().ts) for sim in sims)
    bars = sum(len(sim.minute_bars(code).start) for sim in sims for code in sim.codes)
    assert summary["trades_written"] == trades
    for way in ("dagster", "plain"):
        figures = summary[way]
        assert (figures["days"], figures["lines_in"], figures["bars"]) == (days, trades, bars)
        assert figures["ticks_per_s"] == round(trades / figures["seconds"])
        assert figures["days_per_minute"] == round(days / figures["seconds"] * 60, 2)
        assert figures["peak_rss_mib"] > 0
    assert summary["same_work"] is True
    assert summary["overhead"] == round(summary["dagster"]["seconds"] / summary["plain"]["seconds"] - 1, 4)
    assert summary["targets_met"] == {"overhead<0.15": summary["overhead"] < 0.15}
    for way in ("dagster", "plain"):  # both ways wrote every day's partitions
        for asset in ("raw_ticks", "tick_minute_bars", "gap_report"):
            assert all(
                (tmp_path / f"data-{way}" / asset / f"date={d}" / "part-0.parquet").is_file() for d in month
            )
