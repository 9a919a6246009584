"""orphaned_run_sensor: a STARTED run whose run worker process is gone is reported FAILURE, so it
frees its slot of the run queue and the failure sensors (end_of_day_heal) see it.

Dagster's run monitoring (`run_monitoring:` in dagster.yaml) asks the run launcher whether a
run's worker is alive, but the DefaultRunLauncher cannot say (`supports_check_run_worker_health`
is False: dagster/_core/launcher/base.py, not overridden in default_run_launcher.py), so under it
monitoring only times out runs stuck starting. The code server that launched a run notices its
worker's death itself (`_check_for_orphaned_runs`, dagster/_grpc/server.py); when that server
died too (the daemon's process group killed, the machine's OOM killer), nothing does, and the
run stays STARTED for good. The worker writes its pid in the engine event "Started process for
run (pid: N)."; this sensor checks that process. It runs where the runs run: under the
DefaultRunLauncher both are processes of the code location's server, on one host. A launcher that
checks its workers itself (Docker, Kubernetes) is left to Dagster's monitoring.
"""

from __future__ import annotations

import psutil

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason

WORKER_STARTED = "Started process for run (pid: "


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's newest worker and when it logged it, or None if none did yet."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False
    ).records
    for record in records:
        entry = record.event_log_entry
        message = entry.dagster_event.message if entry.dagster_event else None
        if message and message.startswith(WORKER_STARTED):
            pid = entry.dagster_event.event_specific_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value), entry.timestamp
    return None


def worker_alive(pid: int, logged_at: float) -> bool:
    """Whether `pid` is still the process that logged it: running (a zombie is dead), and started
    before it logged (a newer process got the pid after the worker died)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= logged_at + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # exists, owned by another user: not a worker we can judge
        return True


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report every STARTED run whose worker is gone as failed (UNEXPECTED_TERMINATION); their ids."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run_id = record.dagster_run.run_id
        worker = run_worker(instance, run_id)
        if worker is None or worker_alive(*worker):
            continue
        # read again after the worker is known dead: one that finished wrote its end event first
        run = instance.get_run_by_id(run_id)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue
        message = f"Run worker (pid {worker[0]}) is gone and the run never finished: marked failed."
        instance.report_run_failed(
            run, message, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        )
        failed.append(run_id)
    return failed


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Runs STARTED whose run worker process is gone (killed with its code server) are "
    "marked FAILURE: they free their run-queue slot and the failure sensors heal them.",
)
def orphaned_run_sensor(context: dg.SensorEvaluationContext):
    if context.instance.run_launcher.supports_check_run_worker_health:
        return dg.SkipReason("the run launcher checks its workers itself (run_monitoring)")
    failed = fail_orphaned_runs(context.instance)
    if not failed:
        return dg.SkipReason("no STARTED run without its worker")
    context.log.warning(f"marked failed, their worker gone: {', '.join(failed)}")
    return dg.SkipReason(f"{len(failed)} orphaned run(s) marked failed: {', '.join(failed)}")
