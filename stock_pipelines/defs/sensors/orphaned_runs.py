"""orphaned_run_sensor: a STARTED run whose run worker process is gone is reported FAILURE, so it
frees its slot of the run queue and the failure sensors (end_of_day_heal) see it.

Dagster's run monitoring (`run_monitoring:` in dagster.yaml) asks the run launcher whether a
run's worker is alive, but the DefaultRunLauncher cannot say (`supports_check_run_worker_health`
is False: dagster/_core/launcher/base.py, not overridden in default_run_launcher.py), so under it
monitoring only times out runs stuck starting. The code server that launched a run notices its
worker's death itself (`_check_for_orphaned_runs`, dagster/_grpc/server.py); when that server
died too (the daemon's process group killed, the machine's OOM killer), nothing does, and the
run stays STARTED for good. The worker writes its pid in the engine event "Started process for
run (pid: N)."; this sensor checks that process, for the runs of its own code location only:
under the DefaultRunLauncher they are children of that location's code server, on the host (and
in the pid namespace) where this sensor is evaluated. One code server per location is assumed
(the embedded and compose setups); a launcher that checks its workers itself (Docker,
Kubernetes) is left to Dagster's monitoring.
"""

from __future__ import annotations

import psutil

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason

WORKER_STARTED = "Started process for run (pid: "
# A process under the worker's pid created this long after the worker logged it is another process
# (the pid was reused). Generous on purpose: psutil derives a start time from the boot time, which
# moves when the wall clock is stepped (NTP, a VM resumed), and a live worker must never be
# mistaken for a new process; pids do not come round again within minutes.
PID_REUSE_MARGIN_S = 300.0


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
    """Whether `pid` may still be the process that logged it: it exists and was not created well
    after it logged (then the pid was reused). A zombie counts as alive: its parent, the code
    server, has not reaped it yet and reports the run itself."""
    try:
        return psutil.Process(pid).create_time() <= logged_at + PID_REUSE_MARGIN_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # exists, owned by another user: not a worker we can judge
        return True


def _location(run: dg.DagsterRun) -> str | None:
    origin = run.remote_job_origin
    return origin.location_name if origin is not None else None


def fail_orphaned_runs(instance: dg.DagsterInstance, location: str | None = None) -> list[str]:
    """Report every STARTED run of code location `location` (None: of any) whose worker is gone as
    failed (UNEXPECTED_TERMINATION); their ids."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if location is not None and _location(record.dagster_run) != location:
            continue  # another location's workers live in another server, maybe another container
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
    origin = context.code_location_origin
    failed = fail_orphaned_runs(context.instance, origin.location_name if origin is not None else None)
    if not failed:
        return dg.SkipReason("no STARTED run without its worker")
    context.log.warning(f"marked failed, their worker gone: {', '.join(failed)}")
    return dg.SkipReason(f"{len(failed)} orphaned run(s) marked failed: {', '.join(failed)}")
