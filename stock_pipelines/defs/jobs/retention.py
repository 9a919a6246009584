"""Daily retention of the raw JSONL archive (archive.retention decides; this job asks the
Dagster instance whether each day's raw_ticks partition is materialized and its checks passed,
and the quality report store whether the day is certified). Every decision on a day older than
the kept window goes to the run's metadata and to the retention log (archive.retention_log).
Its schedule is in `defs/schedules.py`."""

import time
from datetime import date

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from stock_pipelines.archive import retention, retention_log
from stock_pipelines.defs.checks.day_verdict import day_check_results
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.resources import ArchiveResource, LakeResource
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.quality.store import read_summary

RAW_TICKS = dg.AssetKey("raw_ticks")


def raw_ticks_status(instance: dg.DagsterInstance, day: date) -> retention.DayStatus:
    """Materialized, and every raw_ticks check's latest result for the partition passed (a failed
    WARN check does not block: its lines are in quarantine). The latest result counts even when a
    later materialization ran no checks: recovery runs rebuild raw_ticks without them
    (jobs/recovery.py), and the day's verdict is its quality report, which retention reads too."""
    key = day.isoformat()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_TICKS, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return retention.DayStatus(False, False, "no materialization")
    check_keys = [k for check in raw_ticks_checks for k in check.check_keys]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=key)
    )
    problems = []
    for check_key in check_keys:
        record = latest.get(check_key)
        if record is None or record.event is None:
            problems.append(f"{check_key.name} never ran")
            continue
        evaluation = record.event.dagster_event.event_specific_data if record.event.dagster_event else None
        severity = getattr(evaluation, "severity", None)
        if _passes(record.status == AssetCheckExecutionRecordStatus.SUCCEEDED,
                   record.status == AssetCheckExecutionRecordStatus.FAILED, severity.value if severity else ""):
            continue
        problems.append(f"{check_key.name} {record.status.value.lower()}")
    return retention.DayStatus(True, not problems, "; ".join(problems))


def unsettled_checks(rows: list[dict[str, str]]) -> list[str]:
    """The minute_bars checks whose latest result leaves the day's certified report in doubt: failed
    with ERROR, or not finished (planned: a re-run in progress or its worker lost; skipped, or its
    execution failed). Passed, failed with WARN, and never run (the report came without it) do not."""
    return [
        row["check"] for row in rows
        if row["status"] != "never ran" and not _passes(row["status"] == "passed", row["status"] == "failed", row["severity"])
    ]


def _passes(succeeded: bool, failed: bool, severity: str) -> bool:
    """A check's latest result does not stand in a day's way: it passed, or failed with WARN
    (its lines or bars are accounted for elsewhere); planned, skipped or failed with ERROR do."""
    return succeeded or (failed and severity == dg.AssetCheckSeverity.WARN.value)


def day_status(instance: dg.DagsterInstance, day: date, lake_root) -> retention.DayStatus:
    """raw_ticks' state in the instance, and the day's latest verdict: its quality report says
    certified, and no minute_bars check the certification is made of failed with ERROR since (an
    end-of-day re-run that fails one writes no new report, so the older report would be stale)."""
    status = raw_ticks_status(instance, day)
    summary = read_summary(day, lake_root)
    certified = bool(summary and summary.get("certified"))
    failed = unsettled_checks(day_check_results(instance, day.isoformat()))
    verdict = f"{', '.join(failed)} not passed after its certified report" if certified and failed else ""
    return retention.DayStatus(
        status.materialized, status.checks_passed, status.detail, certified and not failed, verdict
    )


class RetentionConfig(dg.Config):
    keep_trading_days: int = -1  # -1: STOCK_PIPELINES_RETENTION_TRADING_DAYS (default 5), 3..10
    as_of: str = ""  # YYYY-MM-DD; default today in Asia/Seoul
    dry_run: bool = False


@dg.op(
    description="Delete raw archive days older than N trading days that are certified and whose "
    "raw_ticks passed its checks."
)
def archive_retention(
    context: dg.OpExecutionContext, config: RetentionConfig, archive: ArchiveResource, lake: LakeResource
):
    settings = archive.config()
    keep = config.keep_trading_days if config.keep_trading_days != -1 else settings.retention_trading_days
    as_of = date.fromisoformat(config.as_of) if config.as_of else clock.now().date()
    roots = [root for root, _ in settings.roots()]
    try:
        plan = retention.plan(
            roots, as_of, lambda d: day_status(context.instance, d, lake.root()), krx_calendar(), keep
        )
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    report = retention.apply(plan) if not config.dry_run else retention.RetentionReport()
    deleted_days = [d.day.isoformat() for d in plan.to_delete if d.trading_day]
    closed_days = [d.day.isoformat() for d in plan.to_delete if not d.trading_day]
    summary = {
        "as_of": as_of.isoformat(),
        "keep_trading_days": keep,
        "oldest_kept_trading_day": plan.oldest_kept_trading_day.isoformat()
        if plan.oldest_kept_trading_day
        else None,
        "dry_run": config.dry_run,
        "deleted_days": deleted_days if not config.dry_run else [],
        "deleted_closed_days": closed_days if not config.dry_run else [],
        "would_delete_days": deleted_days + closed_days if config.dry_run else [],
        "deleted_paths": [str(p) for p in report.deleted],
        "left_in_place": [str(p) for p in report.left],
        "kept": {d.day.isoformat(): d.reason for d in plan.kept},
    }
    log = retention_log.append(
        lake.root(), retention_log.entries(plan, clock.now(), time.time(), config.dry_run)
    )
    for decision in plan.decisions:
        verb = "delete" if decision.delete else "keep"
        context.log.info(f"{verb} {decision.day}: {decision.reason}")
    yield dg.Output(
        summary,
        metadata={
            "deleted_days": len(summary["deleted_days"]),
            "kept_days": len(summary["kept"]),
            "report": dg.MetadataValue.json(summary),
            "retention_log": dg.MetadataValue.path(str(log)),
        },
    )


@dg.job(description="Raw archive retention (archive.retention): reports what it deleted and kept, and why.")
def archive_retention_job() -> None:
    archive_retention()

