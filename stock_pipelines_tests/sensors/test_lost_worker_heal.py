"""An end-of-day run failed because its worker process was lost is run once more by
end_of_day_heal_sensor, like a day-volume tail; a run failed by its own step is not. Real
instance records, a real dead process, a real Redis for governance."""

from __future__ import annotations

import subprocess
import sys

import psutil

import dagster as dg
import pytest
from dagster._core.events import EngineEventData, JobFailureData, RunFailureReason
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from stock_pipelines.defs.jobs.recovery import end_of_day_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.defs.sensors.end_of_day_heal import HEAL_TAG, end_of_day_heal_sensor
from stock_pipelines.defs.sensors.orphaned_runs import PID_REUSE_MARGIN_S, fail_orphaned_runs, worker_alive
from stock_pipelines.resilience.flags import AUTO_RECOVERY

DAY = "2026-11-18"


def dead_pid() -> int:
    """The pid of a process that ran and is gone (reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


def origin_in(location: str) -> RemoteJobOrigin:
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(location), "__repository__")
    return RemoteJobOrigin(repository, end_of_day_job.name)


def started_run(instance: dg.DagsterInstance, pid: int, tags: dict | None = None,
                location: str | None = None) -> dg.DagsterRun:
    """An end-of-day run as its worker leaves it: STARTED, its pid logged the way Dagster logs it."""
    from stock_pipelines.definitions import defs

    job = defs.resolve_job_def(end_of_day_job.name)
    run = instance.create_run_for_job(job, tags={"dagster/partition": DAY, **(tags or {})},
                                      remote_job_origin=origin_in(location) if location else None)
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    instance.report_dagster_event(
        dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name),
        run_id=run.run_id,
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return instance.get_run_by_id(run.run_id)


def heal(instance: dg.DagsterInstance, run_id: str, redis_url: str):
    from stock_pipelines.definitions import defs

    failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[-1]
    context = dg.build_run_status_sensor_context(
        sensor_name="end_of_day_heal_sensor",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
        dagster_event=failure.event_log_entry.dagster_event,
        repository_def=defs.get_repository_def(),
        resources={"redis": RedisResource(url=redis_url)},
    ).for_run_failure()
    return end_of_day_heal_sensor(context)


@pytest.fixture
def instance(monkeypatch):
    monkeypatch.delenv(AUTO_RECOVERY, raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_a_run_whose_worker_is_gone_is_failed_and_healed(instance, redis_server):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = started_run(instance, dead_pid())
        running = started_run(instance, alive.pid)
        assert fail_orphaned_runs(instance) == [orphan.run_id]
    finally:
        alive.kill()
        alive.wait(10)
    assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(running.run_id).status == dg.DagsterRunStatus.STARTED  # its worker lives

    request = heal(instance, orphan.run_id, redis_server.url)
    assert isinstance(request, dg.RunRequest), request
    assert (request.run_key, request.partition_key) == (f"end_of_day:heal:{DAY}", DAY)
    assert request.tags[HEAL_TAG] == "worker_lost"
    assert orphan.run_id in request.tags["stock_pipelines/reason"]


def test_a_healing_run_that_loses_its_worker_too_is_left_to_a_person(instance, redis_server):
    orphan = started_run(instance, dead_pid(), tags={HEAL_TAG: "worker_lost"})
    assert fail_orphaned_runs(instance) == [orphan.run_id]
    skip = heal(instance, orphan.run_id, redis_server.url)
    assert isinstance(skip, dg.SkipReason) and "a person must look" in skip.skip_message


def test_a_run_that_failed_in_a_step_is_not_a_lost_worker(instance, redis_server):
    run = started_run(instance, dead_pid())
    # as the worker reports a run whose step failed (before it exits)
    instance.report_run_failed(run, "a step failed", JobFailureData(error=None, failure_reason=RunFailureReason.STEP_FAILURE))
    assert fail_orphaned_runs(instance) == []  # already finished: not an orphan
    skip = heal(instance, run.run_id, redis_server.url)
    assert isinstance(skip, dg.SkipReason) and "left to a person" in skip.skip_message


def test_a_run_its_code_server_saw_die_is_healed(instance, redis_server):
    """The code server that launched a run fails it when its child dies, giving no reason
    (dagster/_grpc/server.py, `_check_for_orphaned_runs`): no step or check failed, so it is healed."""
    run = started_run(instance, dead_pid())
    instance.report_run_failed(run)
    request = heal(instance, run.run_id, redis_server.url)
    assert isinstance(request, dg.RunRequest) and request.tags[HEAL_TAG] == "worker_lost"


def test_a_run_failed_without_a_reason_before_it_had_a_worker_is_left_to_a_person(instance, redis_server):
    """A launch or code-load failure also comes without a reason; a second run would meet it again."""
    from stock_pipelines.definitions import defs

    run = instance.create_run_for_job(defs.resolve_job_def(end_of_day_job.name), tags={"dagster/partition": DAY})
    instance.report_run_failed(run)
    skip = heal(instance, run.run_id, redis_server.url)
    assert isinstance(skip, dg.SkipReason) and "left to a person" in skip.skip_message


def test_a_lost_worker_left_to_dagsters_run_retries_is_not_healed_twice(tmp_path, redis_server, monkeypatch):
    """Where the instance retries runs itself (docker/dagster.yaml's run_retries), that retry runs
    the day again; the heal sensor does not add a second run."""
    monkeypatch.delenv(AUTO_RECOVERY, raising=False)
    (tmp_path / "dagster.yaml").write_text("run_retries:\n  enabled: true\n  max_retries: 2\n")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = started_run(instance, dead_pid())
        assert fail_orphaned_runs(instance) == [run.run_id]
        skip = heal(instance, run.run_id, redis_server.url)
    assert isinstance(skip, dg.SkipReason) and "Dagster's run retries re-execute it" in skip.skip_message


def test_only_the_runs_of_the_sensors_own_code_location_are_judged(instance):
    """Another location's workers live in another code server, maybe another container: their
    pids mean nothing here."""
    here = started_run(instance, dead_pid(), location="stock_pipelines")
    elsewhere = started_run(instance, dead_pid(), location="another_location")
    assert fail_orphaned_runs(instance, "stock_pipelines") == [here.run_id]
    assert instance.get_run_by_id(elsewhere.run_id).status == dg.DagsterRunStatus.STARTED


def test_a_live_process_is_the_worker_unless_it_was_created_well_after_the_worker_logged_its_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(process.pid).create_time()
        assert worker_alive(process.pid, logged_at=created)
        # a wall clock stepped by minutes between the log and now still reads as the same process
        assert worker_alive(process.pid, logged_at=created - PID_REUSE_MARGIN_S + 1)
        # created long after the worker logged this pid: the pid was reused, the worker is gone
        assert not worker_alive(process.pid, logged_at=created - PID_REUSE_MARGIN_S - 60)
    finally:
        process.kill()
        process.wait(10)
    assert not worker_alive(process.pid, logged_at=created)
