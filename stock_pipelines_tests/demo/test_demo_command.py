"""`stock-pipelines demo`, the main job `./run demo` runs, end to end as a user starts it: a
subprocess with its own Dagster instance, lake and archive; the embedded Redis, simulator and
dagster-daemon it starts. It must recover every bar, pass every check of the end-of-day job and
certify the day, print no warnings, leave nothing running, and the instance must hold what the
UI shows afterwards, without its sensors taking the demo's collector for a real one."""

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import psutil
import pytest

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.market.calendar import Phase
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.quality.store import read_summary
from stock_pipelines_tests.dagster_dev import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DAY = "2026-11-20"  # a fixed past day: the run does not depend on today's date
LATER_IN_SESSION = datetime(2026, 11, 23, 12, 20, tzinfo=SEOUL)  # the next weekday, mid-session


def test_the_demo_recovers_every_bar_and_certifies_the_day(tmp_path: Path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path / "lake"),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(tmp_path / "archive"),
    }
    # as `./run demo` on a fresh clone: the embedded Redis, the default key prefix, no warning filters
    for name in ("REDIS_URL", "STOCK_PIPELINES_REDIS_PREFIX", "PYTHONWARNINGS", "STOCK_PIPELINES_FAKE_NOW",
                 "KIS_BASE_URL", "KIS_APP_KEY", "KIS_APP_SECRET"):
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
    warned = [line for line in (out + done.stderr).splitlines() if "Warning" in line]
    assert warned == [], "the demo's output is a story, not warnings"

    # nothing it started outlives it: the embedded Redis it names, the daemon and its workers
    redis_pid = int(re.search(r"redis: embedded server pid (\d+) answering", out).group(1))
    assert "stops when this command ends" in out
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert leftovers(tmp_path) == []
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["completeness_before"] < 0.95 and summary["completeness_after"] == 1.0
    assert summary["windows_unrecovered"] == 0 and summary["rate_limit_errors"] == 0
    assert summary["certified"] is True
    # every check passes, trade completeness included: the trade tier brought the outages' trades back
    assert summary["end_of_day_checks"] and all(summary["end_of_day_checks"].values()), summary
    assert summary["end_of_day_checks"]["trade_completeness"] is True
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
    # the trade tier: every trade the outages and corrupted lines removed is back, measured against
    # the simulator's own trades, for calls of the trade history on top of the bars' calls
    assert summary["trades_before"] < summary["trades_expected"] == summary["trades_after"], summary
    assert summary["symbols_left_at_bar_level"] == []
    assert summary["calls_by_tier"]["bars"] == summary["exchange_minute_bar_calls"]
    assert summary["calls_by_tier"]["trades"] >= summary["trade_lower_bound_calls"] > 0
    assert f"{summary['trades_after']:,}/{summary['trades_expected']:,} after the trade tier" in out

    # what `./run ui` shows afterwards: the sensor's recovery run, the end-of-day run with every
    # check for the partition, and the report in quality_report's metadata
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DAY}))
        by_job = {r.dagster_run.job_name: r.dagster_run.status for r in runs}
        # the archive's freshness sensor records a changed verdict with a check run of its own
        assert by_job.pop("tick_archive_fresh_job", dg.DagsterRunStatus.SUCCESS) == dg.DagsterRunStatus.SUCCESS
        assert by_job == {
            "recovery_job": dg.DagsterRunStatus.SUCCESS,
            "end_of_day_job": dg.DagsterRunStatus.SUCCESS,
        }
        report = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("quality_report"), asset_partitions=[DAY]), limit=1
        ).records[0]
        metadata = report.asset_materialization.metadata
        assert metadata["certified"].value is True
        assert metadata["verdict"].value.startswith(f"{DAY}: CERTIFIED")
        for name in summary["end_of_day_checks"]:
            key = next(k for k in _check_keys() if k.name == name)
            record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
            # every check is per day but the day's verdict, which names its day instead
            day = record.evaluation.partition if name != "minute_bars_day_certified" else DAY
            assert record.status.value == "SUCCEEDED" and day == DAY, (name, record)
        verdict = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("minute_bars"), "minute_bars_day_certified"), limit=1
        )[0].evaluation
        assert verdict.partition is None
        assert verdict.description == f"{DAY}: CERTIFIED; 5/5 minute_bars checks passed"
        # raw_ticks 4, recovery 1, minute_bars 5, trade completeness and the day's verdict
        assert len(summary["end_of_day_checks"]) == 12
        assert "end_of_day_job: 12/12 checks passed" in out  # as the README shows it
    stored = read_summary(date.fromisoformat(DAY), tmp_path / "lake")
    assert stored["certified"] and stored["completeness"] == 1.0 and stored["day_totals_checked"]
    assert stored["day_totals_note"] == "40 of 40 symbols' day volume from kis"  # all asked, all answered

    # `./run ui` afterwards, on a later weekday in session: the daemon's heartbeat sensor, on the
    # same instance and Redis (restarted from its append-only file) and the real key prefix,
    # must not take the demo's sim-kis-1 (last beat days ago by the demo's clock) for a
    # collector that went down today
    assert krx_calendar().phase(LATER_IN_SESSION) is Phase.CONTINUOUS
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    for name in ("REDIS_URL", "STOCK_PIPELINES_REDIS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(LATER_IN_SESSION))
    from stock_pipelines import settings

    settings.configure_process()  # as every process of `./run ui` does when it starts (conftest restores)
    from stock_pipelines.defs.resources import BrokerResource, RedisResource
    from stock_pipelines.defs.sensors.heartbeat import collector_heartbeat_sensor
    from stock_pipelines.redis_conn import redis_client

    assert any(redis_client().scan_iter("*:hb:sim-kis-1:latest"))  # the demo's collector is in this Redis
    with dg.DagsterInstance.get() as instance:
        [state] = [s for s in instance.all_instigator_state() if s.name == "collector_heartbeat_sensor"]
        result = collector_heartbeat_sensor(
            dg.build_sensor_context(
                instance=instance, cursor=state.instigator_data.cursor,
                resources={"redis": RedisResource(), "broker": BrokerResource()},
            )
        )
    launched = [r.run_key for r in result.run_requests]
    assert launched == [], "the real namespace's sensor launched a recovery for the demo's collector"


def leftovers(tmp_path: Path) -> list[str]:
    """Processes still running for this demo: its paths on their command line or in DAGSTER_HOME."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            if str(tmp_path) in cmdline or str(tmp_path) in process.environ().get("DAGSTER_HOME", ""):
                found.append(f"{process.pid} {cmdline[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _check_keys() -> list[dg.AssetCheckKey]:
    from stock_pipelines.definitions import defs

    return list(defs.resolve_asset_graph().asset_check_keys)
