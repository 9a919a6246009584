"""Run-status sensors for recovery runs: count each outcome in the governance state (Redis).

A failure backs off and queues a retry of the same window with attempt + 1 (the heartbeat sensor
launches it when due); ten failures in a row, or a PERMANENT_OPEN breaker, mean dormant mode. A
success resets the count and records what the run recovered (shown by `stock-pipelines status`).
"""

import json

import dagster as dg
from redis import RedisError

from stock_pipelines.defs.jobs.recovery import WINDOW_TAG, recovery_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.recovery_window import Window

RECOVERED_KEYS = ("windows_recovered", "windows_unrecovered", "rest_bars", "tier1_bars", "calls", "stopped")


def _window(run: dg.DagsterRun) -> Window | None:
    raw = run.tags.get(WINDOW_TAG)
    return Window.from_json(json.loads(raw)) if raw else None


def _recovered(instance: dg.DagsterInstance, run_id: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("recovered_minute_bars")), limit=5
    ).records
    for record in records:
        if record.run_id == run_id and record.asset_materialization is not None:
            meta = record.asset_materialization.metadata
            return {k: meta[k].value for k in RECOVERED_KEYS if k in meta}
    return {}


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[recovery_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="A recovery run succeeded: record what it recovered; complete resets the failure count, "
    "unrecovered windows count as a failed recovery.",
)
def recovery_success_sensor(context: dg.RunStatusSensorContext, redis: RedisResource):
    run = context.dagster_run
    recovered = _recovered(context.instance, run.run_id)
    # A run can succeed and still leave windows unrecovered (the executor stops, with a partial
    # result, when the broker refuses the credentials or the breaker opens): for governance
    # that recovery failed, and is retried / counted toward dormant mode like a failed run.
    complete = not recovered.get("windows_unrecovered")
    detail = json.dumps(recovered, default=str)
    try:
        retry = RecoveryGovernance(redis.client()).record_run(run.run_id, complete, _window(run), detail)
    except RedisError as error:
        raise RuntimeError(
            f"could not record the recovery outcome in Redis: {type(error).__name__}"
        ) from None
    if complete:
        return dg.SkipReason(f"recorded the recovery by {run.run_id}: {detail}")
    return dg.SkipReason(
        f"run {run.run_id} succeeded but left windows unrecovered ({detail}); "
        f"counted as a failed recovery, retry: {retry.run_key if retry else 'none'}"
    )


@dg.run_failure_sensor(
    monitored_jobs=[recovery_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="A recovery run failed: back off (5 s doubling to 10 min, full jitter) and queue a retry; "
    "ten in a row mean dormant mode.",
)
def recovery_failure_sensor(context: dg.RunFailureSensorContext, redis: RedisResource):
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    retry = RecoveryGovernance(redis.client()).record_run(run.run_id, False, _window(run), message)
    context.log.info(
        f"recovery run {run.run_id} failed; retry: {retry.run_key if retry else 'none (dormant)'}"
    )
