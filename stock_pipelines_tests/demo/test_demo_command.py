"""`stock-pipelines demo`, the main job `./run demo` runs, end to end as a user starts it: a
subprocess with its own Dagster instance, lake and archive; the real Redis, simulator and
dagster-daemon it starts. It must recover every bar, pass every check of the end-of-day job and
certify the day, and the instance must hold what the UI shows afterwards."""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from stock_pipelines.quality.store import read_summary
from stock_pipelines_tests.dagster_dev import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DAY = "2026-11-20"  # a fixed past day: the run does not depend on today's date


def test_the_demo_recovers_every_bar_and_certifies_the_day(tmp_path: Path, redis_server, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path / "lake"),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(tmp_path / "archive"),
        "REDIS_URL": redis_server.url,
        "STOCK_PIPELINES_REDIS_PREFIX": "demo-test",
    }
    for name in ("STOCK_PIPELINES_FAKE_NOW", "KIS_BASE_URL", "KIS_APP_KEY", "KIS_APP_SECRET"):
        env.pop(name, None)
    cli = Path(sys.executable).with_name("stock-pipelines")
    done = subprocess.run(
        [str(cli), "demo", "--date", DAY],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["completeness_before"] < 0.95 and summary["completeness_after"] == 1.0
    assert summary["windows_unrecovered"] == 0 and summary["rate_limit_errors"] == 0
    assert summary["certified"] is True
    assert summary["end_of_day_checks"] and all(summary["end_of_day_checks"].values())
    assert "minute_bars_day_volume" in summary["end_of_day_checks"]
    assert "quality report: CERTIFIED" in out
    # the default outages 10:00-10:25 and 13:40-13:52 removed 37 minutes of each of 40 symbols; a
    # call returns up to 30 of today's bars, so no recovery can take fewer than 40 x 2 = 80 calls
    assert summary["missing_symbol_minutes"] == 40 * 37
    assert summary["lower_bound_calls"] == 80
    assert summary["exchange_minute_bar_calls"] <= 88, summary  # within 1.1x, counted by the exchange
    # the broker's bars stand in the outages' minutes (and at most the minute either side), the
    # archive's everywhere else
    assert summary["bars_by_source"]["rest_kis"] <= 40 * (37 + 2 * 2), summary["bars_by_source"]
    assert "lower bound 80 for the 1,480 symbol-minutes the outages removed" in out

    # what `./run ui` shows afterwards: the sensor's recovery run, the end-of-day run with every
    # check for the partition, and the report in quality_report's metadata
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DAY}))
        by_job = {r.dagster_run.job_name: r.dagster_run.status for r in runs}
        assert by_job == {
            "recovery_job": dg.DagsterRunStatus.SUCCESS,
            "end_of_day_job": dg.DagsterRunStatus.SUCCESS,
        }
        report = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("quality_report"), asset_partitions=[DAY]), limit=1
        ).records[0]
        metadata = report.asset_materialization.metadata
        assert metadata["certified"].value is True and "CERTIFIED" in metadata["report"].value
        for name in summary["end_of_day_checks"]:
            key = next(k for k in _check_keys() if k.name == name)
            record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
            assert record.status.value == "SUCCEEDED" and record.evaluation.partition == DAY, (name, record)
    stored = read_summary(date.fromisoformat(DAY), tmp_path / "lake")
    assert stored["certified"] and stored["completeness"] == 1.0 and stored["day_totals_checked"]
    assert stored["day_totals_note"] == "40 of 40 symbols' day volume from kis"  # all asked, all answered


def _check_keys() -> list[dg.AssetCheckKey]:
    from stock_pipelines.definitions import defs

    return list(defs.resolve_asset_graph().asset_check_keys)
