"""Schedules on KRX trading days only: pre-flight at 08:30, end-of-day after the close.

Cron cannot know the KRX calendar, so each schedule fires on weekdays and asks the calendar:
holidays, election days and Dec 31 are skipped with a reason. The end-of-day schedule ticks
every 10 minutes from 15:40 to 17:50 and launches once per day (run key), at the first tick at
least 10 minutes after that day's close, so the CSAT day's 16:30 close is honoured.
Both are on by default. Archive retention has its own schedule in `defs/jobs/retention.py`
(19:00), off by default because it deletes archive files.
"""

from datetime import timedelta

import dagster as dg

from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.defs.jobs.recovery import end_of_day_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.resilience.flags import PREFLIGHT, FeatureFlags

END_OF_DAY_AFTER_CLOSE = timedelta(minutes=10)


def _flags(redis: RedisResource) -> FeatureFlags:
    try:
        return FeatureFlags(redis.client())
    except Exception:  # noqa: BLE001 - no Redis: the environment still decides (and off wins)
        return FeatureFlags(None)


@dg.schedule(
    job=preflight_job,
    cron_schedule="30 8 * * 1-5",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Pre-flight at 08:30 on trading days.",
)
def preflight_schedule(context: dg.ScheduleEvaluationContext, redis: RedisResource):
    at = context.scheduled_execution_time.astimezone(SEOUL)
    if not krx_calendar().is_trading_day(at.date()):
        return dg.SkipReason(f"{at.date()} is not a KRX trading day ({krx_calendar().day(at.date()).reason})")
    flag = _flags(redis).state(PREFLIGHT)
    if not flag.enabled:
        return dg.SkipReason(f"{PREFLIGHT} is off ({flag.source})")
    return dg.RunRequest(run_key=f"preflight:{at.date():%Y%m%d}")


@dg.schedule(
    job=end_of_day_job,
    cron_schedule="*/10 15-17 * * 1-5",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The full pipeline for the day, then its checks, once the session has closed.",
)
def end_of_day_schedule(context: dg.ScheduleEvaluationContext):
    at = context.scheduled_execution_time.astimezone(SEOUL)
    session = krx_calendar().session(at.date())
    if session is None:
        return dg.SkipReason(f"{at.date()} is not a KRX trading day")
    if at < session.close + END_OF_DAY_AFTER_CLOSE:
        return dg.SkipReason(
            f"session closes {session.close:%H:%M}: end-of-day runs from "
            f"{session.close + END_OF_DAY_AFTER_CLOSE:%H:%M}"
        )
    return dg.RunRequest(run_key=f"end_of_day:{at.date():%Y%m%d}", partition_key=at.date().isoformat())
