"""Schedules fire on KRX trading days only; recovery runs are tagged so the instance's run
concurrency keeps them from starving everything else."""

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from stock_pipelines.definitions import defs
from stock_pipelines.defs.jobs.recovery import RUN_KIND_TAG, recovery_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.defs.schedules import end_of_day_schedule, preflight_schedule
from stock_pipelines.market import SEOUL

REPO = Path(__file__).resolve().parents[2]


def tick(schedule, y, m, d, hh, mm):
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(y, m, d, hh, mm, tzinfo=SEOUL),
        repository_def=defs.get_repository_def(),
        resources={"redis": RedisResource()},  # the redis_env fixture's server, through REDIS_URL
    )
    return schedule.evaluate_tick(context)


@pytest.fixture
def redis_env(monkeypatch, redis_server):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("FEATURE_PREFLIGHT_ENABLED", raising=False)
    return redis_server


def test_preflight_runs_at_0830_on_trading_days_only(redis_env, monkeypatch):
    friday = tick(preflight_schedule, 2026, 11, 20, 8, 30)
    assert [r.run_key for r in friday.run_requests] == ["preflight:20261120"]
    christmas = tick(preflight_schedule, 2026, 12, 25, 8, 30)
    assert christmas.run_requests == [] and "not a KRX trading day" in christmas.skip_message
    monkeypatch.setenv("FEATURE_PREFLIGHT_ENABLED", "off")
    off = tick(preflight_schedule, 2026, 11, 20, 8, 30)
    assert off.run_requests == [] and off.skip_message == "FEATURE_PREFLIGHT_ENABLED is off (env)"


def test_end_of_day_waits_for_the_close_and_launches_once_per_day():
    assert tick(end_of_day_schedule, 2026, 11, 20, 15, 30).run_requests == []
    [request] = tick(end_of_day_schedule, 2026, 11, 20, 15, 40).run_requests
    assert (request.run_key, request.partition_key) == ("end_of_day:20261120", "2026-11-20")
    # the CSAT day closes at 16:30: nothing at 15:40, the run at 16:40
    csat = tick(end_of_day_schedule, 2026, 11, 19, 15, 40)
    assert csat.run_requests == [] and "closes 16:30" in csat.skip_message
    assert [r.run_key for r in tick(end_of_day_schedule, 2026, 11, 19, 16, 40).run_requests] == [
        "end_of_day:20261119"
    ]
    assert tick(end_of_day_schedule, 2026, 12, 31, 15, 40).run_requests == []  # year-end: closed


def test_recovery_runs_are_limited_to_one_at_a_time_by_the_instance():
    config = yaml.safe_load((REPO / "dagster_home" / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": RUN_KIND_TAG, "value": "recovery", "limit": 1} in limits
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 2
    assert recovery_job.tags[RUN_KIND_TAG] == "recovery"
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    heartbeat = sensors["collector_heartbeat_sensor"]
    assert heartbeat.default_status == dg.DefaultSensorStatus.RUNNING
    assert heartbeat.minimum_interval_seconds <= 15



def test_a_launch_that_outlasts_the_code_server_is_retried_with_the_instance_limits_kept(tmp_path, monkeypatch):
    """The embedded default's instance, as Dagster loads it, retries a run whose launch failed on
    the code server (a slow gRPC reply on a loaded machine left it STARTING for good) and keeps
    the run queue's concurrency section; the compose deployments carry the same setting."""
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_user_code_failure_retries == 5
        assert queue.max_concurrent_runs == 2
        assert {"key": RUN_KIND_TAG, "value": "recovery", "limit": 1} in queue.tag_concurrency_limits
    embedded = yaml.safe_load((REPO / "dagster_home" / "dagster.yaml").read_text())["run_coordinator"]
    for compose in ("docker/dagster.yaml", "docker/scale-out/dagster.yaml"):
        assert yaml.safe_load((REPO / compose).read_text())["run_coordinator"] == embedded, compose
