"""end_of_day_after_resume_sensor: once a person resumes the broker's refused credentials, run the
end of day again for every day whose latest end-of-day run failed while they were refused.

A refusal stops every broker call of the run (the recovery, the day volumes, the sample: each
step records what went unanswered and the checks fail), and nothing heals by itself until a
person fixes the key and types `stock-pipelines resume` (the breaker goes PERMANENT_OPEN ->
CLOSED; `resilience.refusals`). A day qualifies when its latest end-of-day run failed, ran
during the refusal, its checks record broker calls that went unanswered, and every check that
failed is one unanswered calls explain (the gaps stay open, the broker's figures are missing);
a run that failed a check of the archive itself, or in a step, is left to a person (`end_of_day_heal_sensor` handles the day-volume tail). One run a day a
resume (the run key names both), and only while automatic recovery is allowed: the feature flag
is on and governance is not dormant. A sensor of its own, not a run-failure sensor: the resume
comes after the failure, often hours later.
"""

from datetime import UTC, datetime

import dagster as dg
from redis import RedisError

from stock_pipelines.defs.jobs.recovery import end_of_day_job
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.defs.sensors.end_of_day_heal import HEAL_TAG, automatic_run_held, check_evaluations
from stock_pipelines.recovery.sources import breaker_for
from stock_pipelines.resilience.refusals import Refusal, latest_refusal

PARTITION_TAG = "dagster/partition"
# the check and the metadata entry where a run records the broker calls that went unanswered
UNANSWERED = {
    "every_gap_recovered": "stopped",
    "minute_bars_day_volume": "broker_failed",
    "minute_bars_match_broker": "failed_windows",
}

# what a refusal can fail: the gaps stay open and the broker's figures are missing
REFUSAL_EXPLAINS = {
    *UNANSWERED, "minute_bars_completeness", "trade_completeness", "minute_bars_day_certified",
}


def failed_on_refusal(evaluations: list[dg.AssetCheckEvaluation]) -> bool:
    failed = {e.check_name for e in evaluations if not e.passed}
    return bool(failed) and failed <= REFUSAL_EXPLAINS and broker_went_unanswered(evaluations)


def broker_went_unanswered(evaluations: list[dg.AssetCheckEvaluation]) -> bool:
    for evaluation in evaluations:
        entry = UNANSWERED.get(evaluation.check_name)
        value = evaluation.metadata.get(entry) if entry else None
        if value is not None and value.value:
            return True
    return False


def failed_days(instance: dg.DagsterInstance, refusal: Refusal) -> tuple[list[str], list[str]]:
    """(days whose latest end-of-day run failed on the refusal, other failed days of that time)."""
    # the runs of the refusal's time only: a run created after the resume did not meet it
    resumed = datetime.fromtimestamp(refusal.resumed_at, UTC) if refusal.resumed_at is not None else None
    touched = instance.get_run_records(
        dg.RunsFilter(job_name=end_of_day_job.name, created_before=resumed,
                      updated_after=datetime.fromtimestamp(refusal.refused_at, UTC))
    )
    days = sorted({r.dagster_run.tags[PARTITION_TAG] for r in touched if PARTITION_TAG in r.dagster_run.tags})
    refused, other = [], []
    for day in days:
        latest = instance.get_run_records(
            dg.RunsFilter(job_name=end_of_day_job.name, tags={PARTITION_TAG: day}), limit=1
        )[0]
        if latest.dagster_run.status is not dg.DagsterRunStatus.FAILURE:
            continue
        started = latest.start_time or latest.create_timestamp.timestamp()
        ended = latest.end_time or latest.update_timestamp.timestamp()
        if not refusal.covers(started, ended):
            continue
        evaluations = check_evaluations(instance, latest.dagster_run.run_id)
        (refused if failed_on_refusal(evaluations) else other).append(day)
    return refused, other


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dg.sensor(
    job=end_of_day_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After a person resumes the broker's refused credentials (`stock-pipelines resume`): run the "
    "end of day again, once, for each day whose latest end-of-day run failed while they were refused.",
)
def end_of_day_after_resume_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, broker: BrokerResource
):
    name = broker.name()
    try:
        client = redis.client()
        refusal = latest_refusal(breaker_for(name, client).snapshot())
    except RedisError as error:
        return dg.SkipReason(f"breaker unknown (Redis: {type(error).__name__}); not re-running")
    if refusal is None:
        return dg.SkipReason(f"{name}: no credentials refusal on record")
    refused, other = failed_days(context.instance, refusal)
    left = f"; left to a person (failed for another cause): {', '.join(other)}" if other else ""
    if not refused:
        return dg.SkipReason(f"{name}: no end-of-day run failed on the refusal of {_at(refusal.refused_at)}{left}")
    if refusal.resumed_at is None:
        return dg.SkipReason(
            f"{name} credentials refused since {_at(refusal.refused_at)}: the end of day of "
            f"{', '.join(refused)} runs again once a person resumes (`stock-pipelines resume`){left}"
        )
    held = automatic_run_held(redis)
    if held:
        return dg.SkipReason(f"{', '.join(refused)}: {held}")
    if other:
        context.log.info(left.removeprefix("; "))
    resume = f"{refusal.resumed_at:.0f}"
    return [
        dg.RunRequest(
            run_key=f"end_of_day:resumed:{day}:{name}:{resume}",
            partition_key=day,
            tags={
                HEAL_TAG: "resumed",
                "stock_pipelines/reason": f"failed while the {name} credentials were refused; "
                f"resumed by {refusal.resumed_by} at {_at(refusal.resumed_at)}"[:200],
            },
        )
        for day in refused
    ]
