"""Schedules on KRX trading days only: pre-flight at 08:30, end-of-day after the close, and
minute_bars' freshness check at the certification deadlines (16:30 and 17:30 KST, the CSAT
day's; it names the day due whatever day it runs).

Cron cannot know the KRX calendar, so each schedule fires on weekdays and asks the calendar:
holidays, election days and Dec 31 are skipped with a reason. The end-of-day schedule ticks
every 10 minutes from 15:40 to 17:50 and launches once per day (run key), at the first tick at
least 10 minutes after that day's close, so the CSAT day's 16:30 close is honoured.
Archive retention runs at 19:00 on trading days, after the day's end-of-day run and its report;
it deletes only days older than the kept window (5 trading days by default) that are certified.
All four are on by default.
"""

from datetime import timedelta

import dagster as dg

from stock_pipelines.defs.jobs.freshness import minute_bars_freshness_job
from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.defs.jobs.recovery import end_of_day_job
from stock_pipelines.defs.jobs.retention import archive_retention_job
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.resilience.flags import PREFLIGHT, FeatureFlags

END_OF_DAY_AFTER_CLOSE = timedelta(minutes=10)


def _seoul_schedule(job, cron: str, description: str):
    """A schedule on Asia/Seoul time, on by default."""
    return dg.schedule(
        job=job,
        cron_schedule=cron,
        execution_timezone="Asia/Seoul",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )


def _at(context: dg.ScheduleEvaluationContext):
    return context.scheduled_execution_time.astimezone(SEOUL)


def _closed(at) -> dg.SkipReason | None:
    """The skip for a day the KRX does not trade, naming why (weekend, holiday, ...)."""
    if krx_calendar().is_trading_day(at.date()):
        return None
    return dg.SkipReason(f"{at.date()} is not a KRX trading day ({krx_calendar().day(at.date()).reason})")


def _flags(redis: RedisResource) -> FeatureFlags:
    try:
        return FeatureFlags(redis.client())
    except Exception:  # noqa: BLE001 - no Redis: the environment still decides (and off wins)
        return FeatureFlags(None)


@_seoul_schedule(preflight_job, "30 8 * * 1-5", "Pre-flight at 08:30 on trading days.")
def preflight_schedule(context: dg.ScheduleEvaluationContext, redis: RedisResource):
    at = _at(context)
    if (closed := _closed(at)) is not None:
        return closed
    flag = _flags(redis).state(PREFLIGHT)
    if not flag.enabled:
        return dg.SkipReason(f"{PREFLIGHT} is off ({flag.source})")
    return dg.RunRequest(run_key=f"preflight:{at.date():%Y%m%d}")


@_seoul_schedule(
    end_of_day_job,
    "*/10 15-17 * * 1-5",
    "The full pipeline for the day, then its checks, once the session has closed.",
)
def end_of_day_schedule(context: dg.ScheduleEvaluationContext):
    at = _at(context)
    session = krx_calendar().session(at.date())
    if session is None:
        return dg.SkipReason(f"{at.date()} is not a KRX trading day")
    if at < session.close + END_OF_DAY_AFTER_CLOSE:
        return dg.SkipReason(
            f"session closes {session.close:%H:%M}: end-of-day runs from "
            f"{session.close + END_OF_DAY_AFTER_CLOSE:%H:%M}"
        )
    return dg.RunRequest(run_key=f"end_of_day:{at.date():%Y%m%d}", partition_key=at.date().isoformat())


@_seoul_schedule(
    minute_bars_freshness_job,
    "30 16,17 * * 1-5",
    "minute_bars_certified_in_time at 16:30 and 17:30 KST: is the day due certified?",
)
def minute_bars_freshness_schedule(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"freshness:{_at(context):%Y%m%d%H%M}")


@_seoul_schedule(
    archive_retention_job,
    "0 19 * * 1-5",
    "Archive retention at 19:00 on trading days: certified days older than the kept window go.",
)
def archive_retention_schedule(context: dg.ScheduleEvaluationContext):
    at = _at(context)
    if (closed := _closed(at)) is not None:
        return closed
    # the window counts from the tick's day, not from whenever a queued run gets to execute: a run
    # that starts after midnight would count the next day as one of the days kept
    return dg.RunRequest(
        run_key=f"retention:{at.date():%Y%m%d}",
        run_config={"ops": {"archive_retention": {"config": {"as_of": at.date().isoformat()}}}},
    )
