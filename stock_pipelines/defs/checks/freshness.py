"""minute_bars_certified_in_time: the freshness signal of minute_bars on the KRX calendar.

The day that must be certified now (`quality.freshness.due_day`: the latest trading day whose
close was an hour ago, 16:30 KST, 17:30 on a CSAT day) has a quality_report that says certified.
It judges the clock's due day, not a partition, so it sits on its own unpartitioned asset,
`certification_deadline` (declared here, downstream of quality_report, never materialized):
minute_bars' checks are all per day, and a backfill of a past day neither lists nor runs it. Its
status in the UI is the answer for now. It runs on its own schedule at the deadlines
(`minute_bars_freshness_schedule`), in no materialization.

Why not Dagster's own: a `FreshnessPolicy` (1.13) judges the asset's last materialization of any
partition against a cron, so today's recovery or a backfill of an old day would read fresh, and
neither it nor `build_time_partition_freshness_checks` (superseded, one cron deadline, the wall
clock) knows the CSAT day's later close or what "certified" means.
"""

import dagster as dg

from stock_pipelines.defs.checks.day_inputs import latest_materialization
from stock_pipelines.defs.checks.day_verdict import QUALITY_REPORT
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.quality.freshness import due_day

CERTIFIED_IN_TIME = "minute_bars_certified_in_time"

certification_deadline = dg.AssetSpec(
    "certification_deadline",
    deps=[QUALITY_REPORT],
    description="The trading day due certified by now (close + 1 h: 16:30 KST, 17:30 on a CSAT day). Not "
    "materialized: its check minute_bars_certified_in_time is the freshness signal of minute_bars.",
    group_name="quality",
)


@dg.asset_check(
    asset=certification_deadline.key,
    name=CERTIFIED_IN_TIME,
    description="Freshness on the KRX calendar: the latest trading day whose deadline passed (close + 1 h: "
    "16:30 KST, 17:30 on a CSAT day) has a certified quality_report. Evaluated at the deadlines by "
    "minute_bars_freshness_schedule. ERROR when it has none or its report is not certified.",
)
def minute_bars_certified_in_time(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    now = clock.now()
    due = due_day(krx_calendar(), now)
    record = latest_materialization(context.instance, QUALITY_REPORT, due.day.isoformat())
    metadata: dict = {
        "due_day": due.day.isoformat(),
        "deadline": dg.MetadataValue.timestamp(due.deadline),
        "evaluated_at": dg.MetadataValue.timestamp(now),
    }
    if record is None:
        overdue_min = (now - due.deadline).total_seconds() / 60
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{due.day} has no quality_report, due by {due.deadline:%Y-%m-%d %H:%M} KST "
            f"({overdue_min:.0f} min ago)",
            metadata={**metadata, "overdue_minutes": overdue_min},
        )
    certified = bool(record.asset_materialization.metadata["certified"].value)
    return dg.AssetCheckResult(
        passed=certified,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{due.day}: {'certified' if certified else 'NOT CERTIFIED'} "
        f"(due by {due.deadline:%Y-%m-%d %H:%M} KST)",
        # when the event was stored: the wall clock, not the project clock `deadline` is on
        metadata={
            **metadata,
            "certified": certified,
            "reported_at": dg.MetadataValue.timestamp(record.timestamp),
        },
    )
