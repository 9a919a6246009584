"""benchmarks/collector_pipeline.py's metrics-overhead run on a few frames: both runs archive every
trade, the endpoint is really scraped (by another process) while the pipeline works, the overhead
is their ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def collector_pipeline(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import collector_pipeline

    return collector_pipeline


def test_metrics_overhead_run_on_a_few_frames(collector_pipeline):
    frames = collector_pipeline.build_frames(symbols=4, count=3000, batch=2)
    trades = sum(int(frame.split("|")[2]) for frame in frames)
    figures = collector_pipeline.metrics_overhead(frames, rounds=1, scrape_interval=0.005)
    assert figures["archived"] == trades
    assert figures["scrapes"] >= 2  # the first answers before the run starts
    # the goal: at Prometheus's interval the endpoint takes under 3% of the collector's core
    assert 0 < figures["scrape_cpu_s"] < 0.03 * collector_pipeline.PROMETHEUS_INTERVAL_S
    assert figures["endpoint_share"] > 0  # the scrapes during the run took CPU of their own
    for measure in ("cpu_s", "wall_s"):
        assert figures[f"overhead_{measure}"] == figures[f"on_{measure}"] / figures[f"off_{measure}"] - 1
