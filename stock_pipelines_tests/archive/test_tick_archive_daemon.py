"""tick_archive_sensor in the real sensor daemon loop: several ticks on one trading day record
the observation every tick and the freshness verdict through a check run on each change, and no
tick fails (a runless check evaluation per tick used to fail every tick after the day's first)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration

from stock_pipelines.defs.assets.tick_archive import FRESH_CHECK_KEY, TICK_ARCHIVE, VERDICT_TAG
from stock_pipelines.ops import clock
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines_tests.dagster_dev import REPO_ROOT
from stock_pipelines_tests.waiting import wait_until

from .conftest import DAY, seoul_us, session_trades, write_day

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NOW = datetime.fromtimestamp(seoul_us(10, 30) / 1e6, UTC)  # continuous trading on DAY
SENSOR = "tick_archive_sensor"


def written(root, collector: str, seconds_ago: float) -> None:
    """Set `collector`'s files' last write to `seconds_ago` before the project clock's now."""
    at = clock.now().timestamp() - seconds_ago
    for path in (root / collector).rglob("*.jsonl"):
        os.utime(path, (at, at))


def sensor_ticks(instance):
    (state,) = [s for s in instance.all_instigator_state() if s.name == SENSOR]
    return instance.get_ticks(state.instigator_origin_id, state.selector_id)


def check_runs(instance):
    return instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}))


def finished_check_run(instance, count: int):
    runs = check_runs(instance)
    assert len(runs) <= count, [r.tags for r in runs]
    done = len(runs) == count and all(r.is_finished for r in runs)
    return runs[0] if done else None


def test_every_tick_of_a_day_records_and_verdict_changes_run_the_check(archive_env, monkeypatch):
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(NOW))
    write_day(archive_env, "kis-1", session_trades("005930", 30, start=(10, 0)))
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades("005930", 10, start=(10, 0))])
    target = ModuleTarget(
        module_name="stock_pipelines_tests.archive.tick_archive_location",
        attribute="defs",
        location_name="tick_archive_location",
        working_directory=str(REPO_ROOT),
    )
    history = []  # (check run verdict tag, stored execution) per run the sensor launched
    with dg.instance_for_test() as instance, create_test_daemon_workspace_context(target, instance) as workspace:
        start = datetime.now(UTC)  # Dagster's own tick clock, frozen per tick past the 120 s interval

        queue = QueuedRunCoordinatorDaemon(interval_seconds=1)

        def tick(number: int) -> None:
            """One pass of the sensor daemon, then of the run queue daemon (the instance queues runs)."""
            with freeze_time(start + timedelta(seconds=130 * number)):
                list(execute_sensor_iteration(workspace, logging.getLogger("tick-archive-test"), None, None))
            list(queue.run_iteration(workspace))

        def expect_run(count: int, verdict: str):
            run = wait_until(lambda: finished_check_run(instance, count), 90, f"check run {count}")
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
            assert run.tags[VERDICT_TAG] == verdict and run.tags["dagster/partition"] == DAY.isoformat()
            latest = instance.event_log_storage.get_asset_check_execution_history(FRESH_CHECK_KEY, limit=1)[0]
            assert (latest.run_id, latest.partition) == (run.run_id, DAY.isoformat())
            history.append((verdict, latest.status))
            return latest

        written(archive_env, "kis-1", 5)
        written(archive_env, "kiwoom-1", 5)
        tick(0)  # the day's first observation: a check run records "fresh"
        expect_run(1, "passed")
        tick(1)  # same verdict: observed, no new run
        assert len(check_runs(instance)) == 1

        written(archive_env, "kis-1", 5)
        written(archive_env, "kiwoom-1", 300)  # kiwoom-1 went quiet 5 minutes ago
        tick(2)
        latest = expect_run(2, "failed")
        evaluation = latest.event.get_dagster_event().asset_check_evaluation_data
        assert "logs not written: kiwoom-1" in evaluation.description
        tick(3)  # still stale: no new run
        assert len(check_runs(instance)) == 2

        statuses = [t.status for t in sensor_ticks(instance)]
        errors = [t.error.message for t in sensor_ticks(instance) if t.error]
        observations = instance.fetch_observations(TICK_ARCHIVE, limit=100).records

    assert TickStatus.FAILURE not in statuses and not errors, errors
    assert len(statuses) == 4
    assert [r.partition_key for r in observations] == [DAY.isoformat()] * 4
    assert history == [("passed", Status.SUCCEEDED), ("failed", Status.FAILED)]
