"""minute_bars_day_certified: the verdict of the newest day the end of day reported on, where a
user looks first.

The quality checks on minute_bars are partitioned by trading day: the UI's Checks list sums up
each one's status over every day, and no single place says which day was certified. This check
is not partitioned: it runs after quality_report in the same run and reports that day's verdict
with every minute_bars check's result for it (from the instance's records). The UI shows its
result while it is newer than minute_bars' newest materialization; a later one (today's
recovery, or a day that fails a blocking check, which gets no report and so no verdict) makes it
read Not Evaluated until the next end of day, and its execution history keeps each day's verdict.
"""

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter

from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.checks.day_inputs import latest_materialization
from stock_pipelines.defs.checks.minute_bars_checks import minute_bars_checks
from stock_pipelines.defs.tables import rows_table

QUALITY_REPORT = dg.AssetKey("quality_report")
DAY_CERTIFIED = "minute_bars_day_certified"
STATUS = {"SUCCEEDED": "passed", "FAILED": "failed"}  # as the UI says them
CHECK_COLUMNS = [("check", "string"), ("status", "string"), ("severity", "string"), ("description", "string")]


def day_check_results(instance: dg.DagsterInstance, partition_key: str) -> list[dict[str, str]]:
    """Each minute_bars quality check's latest result for the partition, as the UI names them."""
    keys = sorted((k for checks in minute_bars_checks for k in checks.check_keys), key=lambda k: k.name)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        keys, partition_filter=PartitionKeyFilter(key=partition_key)
    )
    rows = []
    for key in keys:
        record = latest.get(key)
        evaluation = record.evaluation if record is not None else None
        rows.append(
            {
                "check": key.name,
                "status": STATUS.get(record.status.value, record.status.value.lower())
                if record is not None
                else "never ran",
                # a result's severity matters when it failed: ERROR blocks, WARN does not
                "severity": evaluation.severity.value
                if evaluation is not None and not evaluation.passed
                else "",
                "description": (evaluation.description or "") if evaluation is not None else "",
            }
        )
    return rows


def _report_day(context: dg.AssetCheckExecutionContext) -> tuple[str, dg.AssetMaterialization]:
    """The run's day and its quality_report; outside a partitioned run, the newest report."""
    if context.has_partition_key:
        record = latest_materialization(context.instance, QUALITY_REPORT, context.partition_key)
    else:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=QUALITY_REPORT), limit=1
        ).records
        record = records[0] if records else None
    if record is None or record.asset_materialization is None:
        raise dg.Failure("no quality_report to read the verdict from: run end_of_day_job for a day")
    materialization = record.asset_materialization
    return materialization.partition or "", materialization


@dg.asset_check(
    asset=minute_bars,
    additional_deps=[QUALITY_REPORT],
    description="The newest day end_of_day_job reported on (runs after quality_report): certified or not, "
    "and each minute_bars check's result for that day. Not partitioned: its status is that day's verdict.",
)
def minute_bars_day_certified(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    day, report = _report_day(context)
    metadata = report.metadata
    certified = bool(metadata["certified"].value)
    checks = day_check_results(context.instance, day)
    failed = [row["check"] for row in checks if row["status"] != "passed"]
    verdict = "CERTIFIED" if certified else "NOT CERTIFIED"
    description = f"{day}: {verdict}; {len(checks) - len(failed)}/{len(checks)} minute_bars checks passed" + (
        f" (not passed: {', '.join(failed)})" if failed else ""
    )
    return dg.AssetCheckResult(
        passed=certified,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "day": day,
            "verdict": verdict,
            "completeness": float(metadata["completeness"].value),
            "checks": rows_table(CHECK_COLUMNS, checks),
            "report": metadata["html_path"],
            "headline": metadata["verdict"].value if "verdict" in metadata else "",
        },
    )
