"""benchmarks/ingest.py's scaling line and benchmarks/ingest_profile.py's stage table, on a small
generated day (the full-size runs are benchmarks, not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def ingest_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import ingest

    return ingest


def test_the_profile_accounts_for_every_line_and_almost_all_of_the_run(ingest_benchmark, tmp_path):
    lines, _ = ingest_benchmark.generate(tmp_path / "archive", 40_000)
    script = str(BENCHMARKS / "ingest_profile.py")
    done = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path / "archive"), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    profile = json.loads(done.stdout.strip().splitlines()[-1])
    run, stages = profile["run"], profile["stages"]
    assert run["lines_in"] == lines == 40_000 + 3 + 400  # the bad lines and the kiwoom replay
    assert (run["rows_kept"], run["duplicates"], run["quarantined"]) == (40_000, 400, 3)
    for stage in (
        "parse: polars read_ndjson",
        "validate: reject rules",
        "order",
        "dedupe",
        "write: raw_ticks Parquet encode",
        "bars: scan and aggregate",
    ):
        assert stages[stage]["calls"] >= 1 and stages[stage]["cpu"] >= 0
    # the timed stages hold nearly all of the run's CPU: the table leaves no stage out
    assert abs(stages["between stages (untimed)"]["cpu"]) <= 0.25 * run["cpu_seconds"]
    assert len(profile["range_start_rss_mib"]) == stages["order"]["calls"]
    assert stages["validate: reject rules"]["peak_mib"] > 0

    ranges_only = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path / "archive"), "--ranges-only"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    ranges = json.loads(ranges_only.stdout.strip().splitlines()[-1])["ranges"]
    assert sum(r["rows"] for r in ranges) == 40_400  # every valid row, duplicates not yet dropped
    assert len(ranges) == stages["order"]["calls"] and all(r["RssAnon"] > 0 for r in ranges)


def test_flatness_is_judged_between_the_two_largest_days(ingest_benchmark, capsys):
    def point(ticks: int, peak: int) -> dict:
        return {"lines_in": ticks, "seconds": ticks / 1e6, "peak_rss_mib": peak}

    sizes = ((1_000_000, 480), (10_000_000, 900), (30_000_000, 940))
    line = ingest_benchmark.scaling({ticks: point(ticks, peak) for ticks, peak in sizes})
    assert line["peak_mib_per_million_ticks"] == round(460 / 29, 1)
    assert line["peak_mib_per_million_ticks_judged"] == 2.0
    assert [p["peak_rss_mib"] for p in line["scaling"]] == [480, 900, 940]
    assert "10,000,000 -> 30,000,000 ticks: peak +2.0 MiB per million ticks" in capsys.readouterr().out
    two = ingest_benchmark.scaling({1_000_000: point(1_000_000, 480), 10_000_000: point(10_000_000, 900)})
    assert two["peak_mib_per_million_ticks_judged"] == two["peak_mib_per_million_ticks"] == round(420 / 9, 1)
