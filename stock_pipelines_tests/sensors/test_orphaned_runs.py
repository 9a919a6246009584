"""Runs whose worker process died do not hold the run queue: a real `dagster dev` (one run slot),
runs of a job that waits for a file, and SIGKILLs of real processes.

- the run worker alone: the code server that launched it sees its child die and fails the run
  (Dagster's own `_check_for_orphaned_runs`);
- the run worker and that code server (the daemon's process group killed, the OOM killer): no
  Dagster part notices under the DefaultRunLauncher; once a code server runs again (here the
  location is reloaded; a restarted daemon starts its own), orphaned_run_sensor fails the run.
Either way the next queued run starts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from stock_pipelines.defs.sensors.orphaned_runs import run_worker
from stock_pipelines_tests.dagster_dev import QUICK_RUN_QUEUE, dagster_dev
from stock_pipelines_tests.waiting import wait_until

WORKSPACE = """load_from:
  - python_module:
      module_name: stock_pipelines_tests.sensors.orphan_location
      location_name: orphans
      working_directory: {root}
"""
ONE_SLOT = """
concurrency:
  runs:
    max_concurrent_runs: 1
"""
RELOAD = """mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } } } }"""
LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
SENSOR_BOUND_S = 45  # the sensor's 15 s interval, the daemon's sensor loop and a loaded machine


def launch(dev, release: Path) -> str:
    params = {
        "selector": {"repositoryLocationName": "orphans", "repositoryName": "__repository__", "jobName": "hold_job"},
        "runConfigData": {"ops": {"hold": {"config": {"release_file": str(release)}}}},
    }
    result = dev.graphql(LAUNCH, {"params": params}, timeout=120)["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def reloaded(dev) -> bool:
    """Reload the location: its proxy starts a new code server (the first calls may meet the old,
    dead one)."""
    entry = dev.graphql(RELOAD, {"name": "orphans"}, timeout=120)["reloadRepositoryLocation"]
    return entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return records[-1].event_log_entry.dagster_event.message if records else ""


def started_worker(instance: dg.DagsterInstance, run_id: str) -> int:
    wait_until(lambda: status(instance, run_id) == dg.DagsterRunStatus.STARTED, 90, f"run {run_id} STARTED", 0.5)
    return wait_until(lambda: run_worker(instance, run_id), 30, f"the worker pid of {run_id}", 0.5)[0]


@pytest.mark.timeout(240)
def test_a_run_whose_worker_died_fails_and_the_queue_moves_on(tmp_path):
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE.format(root=Path(__file__).resolve().parents[2]))
    release = tmp_path / "release"
    began = time.monotonic()
    with dagster_dev(tmp_path, instance_yaml=QUICK_RUN_QUEUE + "---" + ONE_SLOT, workspace=workspace) as dev:
        print(f"dagster dev up: {time.monotonic() - began:.1f} s")
        instance = dg.DagsterInstance.from_config(str(dev.home))
        first, second, third = (launch(dev, release) for _ in range(3))

        # 1. the worker alone: its code server fails the run
        worker = started_worker(instance, first)
        print(f"first run's worker up: {time.monotonic() - began:.1f} s")
        assert status(instance, second) == dg.DagsterRunStatus.QUEUED  # one slot, held by the first
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: status(instance, first) == dg.DagsterRunStatus.FAILURE, 30, "the first run FAILURE", 0.5)
        first_failed_s = time.monotonic() - killed

        # 2. the worker and the code server that launched it: only orphaned_run_sensor can tell
        worker = started_worker(instance, second)
        print(f"second run's worker up: {time.monotonic() - began:.1f} s")
        code_server = psutil.Process(worker).parent()
        assert "dagster" in " ".join(code_server.cmdline()) and "grpc" in " ".join(code_server.cmdline())
        code_server.kill()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(5)
        assert status(instance, second) == dg.DagsterRunStatus.STARTED  # nothing else notices
        wait_until(lambda: reloaded(dev), 60, "the code location served again", 2)
        served_s = time.monotonic() - killed
        wait_until(lambda: status(instance, second) == dg.DagsterRunStatus.FAILURE, SENSOR_BOUND_S,
                   "the second run FAILURE once its location is served again", 0.5)
        second_failed_s = time.monotonic() - killed
        assert failure_message(instance, second) == (
            f"Run worker (pid {worker}) is gone and the run never finished: marked failed."
        )

        # the queue moves on: the third run starts and, released, succeeds
        started_worker(instance, third)
        print(f"third run's worker up: {time.monotonic() - began:.1f} s")
        release.write_text("go")
        wait_until(lambda: status(instance, third) == dg.DagsterRunStatus.SUCCESS, 60, "the third run SUCCESS", 0.5)
        print(f"worker killed -> FAILURE: {first_failed_s:.1f} s (code server); with its code server: "
              f"{second_failed_s:.1f} s (sensor; code location served again after {served_s:.1f} s)")
