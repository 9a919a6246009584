"""end_of_day_heal_sensor: when an end-of-day run fails because the broker's day volume shows
trades after the archive's last ones (and on nothing else a re-run cannot fix), or because its
run worker process was lost (killed, or never started), run the end of day once more.

An end-of-day run fetches the broker's day volumes (quality_broker_day_volumes) before its
gap_report, so it recovers such tails itself; this failure means the figures came after that run's
gap_report. The next run's gap_report turns each shortfall into a gap to the close, and the
recovery fetches it from REST (docs/quality.md). One retry a day (run key), and only while automatic recovery is allowed: the
feature flag is on and governance is not dormant. Any other failure is left to a person.

A lost worker says nothing about the day's data: the run failed outside its steps, reported by
orphaned_run_sensor (UNEXPECTED_TERMINATION), run monitoring (START_TIMEOUT) or the code server
that saw its child die (no reason given, and no step or check failed).
"""

import dagster as dg
from dagster._core.events import RunFailureReason
from redis import RedisError

from stock_pipelines.defs.jobs.recovery import end_of_day_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.defs.sensors.orphaned_runs import run_worker
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.resilience.flags import AUTO_RECOVERY, FeatureFlags

DAY_VOLUME = dg.AssetCheckKey(dg.AssetKey("minute_bars"), "minute_bars_day_volume")
# a tail's missing bars may also show in the broker sample; any other failing check needs a person
HEALABLE = {DAY_VOLUME.name, "minute_bars_match_broker"}
HEAL_TAG = "stock_pipelines/heal"
WORKER_LOST = {
    RunFailureReason.UNEXPECTED_TERMINATION,
    RunFailureReason.START_TIMEOUT,
    RunFailureReason.RUN_WORKER_RESTART,
}


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    """The run's own check results (not the checks' latest, which another day's run may own)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def tail_shortfalls(evaluations: list[dg.AssetCheckEvaluation]) -> list[str]:
    """Symbols the day-volume check found behind the broker (trades after the last archived)."""
    for evaluation in evaluations:
        if evaluation.asset_check_key == DAY_VOLUME and not evaluation.passed:
            value = evaluation.metadata.get("cum_behind_broker_symbols")
            return list(value.value) if value is not None else []
    return []


def worker_lost(instance: dg.DagsterInstance, run_id: str, failure: dg.DagsterEvent | None) -> bool:
    """The run failed because its process was lost, not because a step or check failed."""
    reason = getattr(failure.event_specific_data, "failure_reason", None) if failure else None
    if reason in WORKER_LOST:
        return True
    if reason is not None:
        return False
    # No reason: the code server saw its worker die, or the run never got a worker (a launch or
    # code-load failure, which another run would meet again): only the first is a lost worker.
    if run_worker(instance, run_id) is None:
        return False
    failed_steps = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    return not failed_steps and all(e.passed for e in check_evaluations(instance, run_id))


def retried_by_dagster(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Dagster's own run retries (`run_retries:` in docker/dagster.yaml) re-execute a run that
    failed outside its steps: healing it as well would run the day twice."""
    if not instance.run_retries_enabled:
        return False
    allowed = int(run.tags.get("dagster/max_retries", instance.run_retries_max_retries))
    return int(run.tags.get("dagster/retry_number", "0")) < allowed


def automatic_run_held(redis: RedisResource) -> str | None:
    """Why no automatic end-of-day run may start now (the feature flag, governance, Redis), or None."""
    try:
        client = redis.client()
        if not FeatureFlags(client).state(AUTO_RECOVERY).enabled:
            return f"{AUTO_RECOVERY} is off"
        governance = RecoveryGovernance(client).decision()
    except RedisError as error:
        return f"governance unknown (Redis: {type(error).__name__}); no automatic run"
    return None if governance.allowed else f"automatic recovery not allowed: {governance.reason}"


@dg.run_failure_sensor(
    monitored_jobs=[end_of_day_job],
    request_job=end_of_day_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="An end-of-day run failed only on the day volume, with trades after the archive's last "
    "ones, or lost its worker process: run the end of day once more (its gap_report adds those gaps; "
    "the recovery fetches them).",
)
def end_of_day_heal_sensor(context: dg.RunFailureSensorContext, redis: RedisResource):
    run = context.dagster_run
    day = run.tags.get("dagster/partition")
    if day is None:
        return dg.SkipReason(f"run {run.run_id} has no partition")
    if run.tags.get(HEAL_TAG):
        return dg.SkipReason(f"{day}: the healing run {run.run_id} failed too; a person must look")
    if worker_lost(context.instance, run.run_id, context.failure_event):
        if retried_by_dagster(context.instance, run):
            return dg.SkipReason(f"{day}: run {run.run_id} lost its worker; Dagster's run retries re-execute it")
        kind, reason = "worker_lost", f"the worker of run {run.run_id} was lost"
    else:
        evaluations = check_evaluations(context.instance, run.run_id)
        failed = sorted({e.check_name for e in evaluations if not e.passed})
        symbols = tail_shortfalls(evaluations)
        if DAY_VOLUME.name not in failed or set(failed) - HEALABLE or not symbols:
            return dg.SkipReason(
                f"{day}: not a day-volume tail (failed checks: {', '.join(failed) or 'none'}; "
                f"symbols behind the broker: {len(symbols)}); left to a person"
            )
        kind, reason = "tail", f"day volume behind the broker: {', '.join(symbols)}"
    held = automatic_run_held(redis)
    if held:
        return dg.SkipReason(f"{day}: {held}")
    return dg.RunRequest(
        run_key=f"end_of_day:heal:{day}",
        partition_key=day,
        tags={HEAL_TAG: kind, "stock_pipelines/reason": reason[:200]},
    )
