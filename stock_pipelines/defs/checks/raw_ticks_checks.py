"""Asset checks on raw_ticks, per trading-day partition: schema, duplicates, session bounds,
and the quarantine share (one check: WARN past one threshold, ERROR past a higher one;
archive.config)."""

from datetime import date

import dagster as dg
import polars as pl

from stock_pipelines import lake
from stock_pipelines.archive.checks import duplicate_trades, outside_session, schema_errors
from stock_pipelines.defs.assets.raw_ticks import session_for
from stock_pipelines.defs.checks.severity import graded
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import ArchiveResource, LakeResource

RAW_TICKS = dg.AssetKey("raw_ticks")


def _ticks(partition_key: str, resource: LakeResource) -> pl.LazyFrame:
    try:
        return lake.scan_partition("raw_ticks", date.fromisoformat(partition_key), resource.root())
    except lake.PartitionMissing as error:
        raise dg.Failure(str(error)) from error


@dg.asset_check(
    asset=RAW_TICKS, partitions_def=trading_day_partitions, description="pandera RawTicksSchema holds"
)
def raw_ticks_schema(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    frame = _ticks(context.partition_key, lake).collect()
    failures, message = schema_errors(frame)
    return dg.AssetCheckResult(
        passed=failures == 0, metadata={"rows": frame.height, "failure_cases": failures, "error": message}
    )


@dg.asset_check(
    asset=RAW_TICKS, partitions_def=trading_day_partitions, description="one row per (symbol, cum)"
)
def raw_ticks_no_duplicates(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    duplicates = duplicate_trades(_ticks(context.partition_key, lake))
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicates": duplicates})


@dg.asset_check(
    asset=RAW_TICKS,
    partitions_def=trading_day_partitions,
    description="every trade inside the day's session (continuous trading or the closing print, with tolerance)",
)
def raw_ticks_in_session(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, archive: ArchiveResource
) -> dg.AssetCheckResult:
    _, session = session_for(context.partition_key)
    tolerance = archive.config().session_tolerance
    outside = outside_session(_ticks(context.partition_key, lake), session, tolerance)
    return dg.AssetCheckResult(
        passed=outside == 0,
        metadata={"outside_session": outside, "tolerance_s": tolerance.total_seconds()},
    )


def _quarantine_share(context: dg.AssetCheckExecutionContext) -> tuple[float, dict]:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_TICKS, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        raise dg.Failure(f"raw_ticks[{context.partition_key}] has no materialization to check")
    metadata = records[0].asset_materialization.metadata
    lines_in = int(metadata["lines_in"].value)
    quarantined = int(metadata["quarantined"].value)
    share = quarantined / lines_in if lines_in else 0.0
    return share, {"lines_in": lines_in, "quarantined": quarantined, "share": share}


@dg.asset_check(
    asset=RAW_TICKS,
    partitions_def=trading_day_partitions,
    description="quarantined lines / lines in: WARN from STOCK_PIPELINES_QUARANTINE_WARN_SHARE "
    "(default 0.1%), ERROR from STOCK_PIPELINES_QUARANTINE_ERROR_SHARE (default 1%)",
)
def raw_ticks_quarantine_share(context: dg.AssetCheckExecutionContext, archive: ArchiveResource) -> dg.AssetCheckResult:
    share, metadata = _quarantine_share(context)
    config = archive.config()
    clean = metadata["quarantined"] == 0
    passed, severity = graded(
        clean or share < config.quarantine_warn_share, clean or share < config.quarantine_error_share
    )
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata={
            **metadata,
            "warn_threshold": config.quarantine_warn_share,
            "error_threshold": config.quarantine_error_share,
        },
        description=None if passed else f"{severity.value}: {share:.3%} of the lines quarantined",
    )


raw_ticks_checks = [
    raw_ticks_schema,
    raw_ticks_no_duplicates,
    raw_ticks_in_session,
    raw_ticks_quarantine_share,
]
