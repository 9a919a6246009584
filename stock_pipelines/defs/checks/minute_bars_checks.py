"""RFC-008 checks on minute_bars, one result per trading-day partition (thin wrappers over
`stock_pipelines.quality`). Every check is blocking: a result failing with ERROR severity stops
the assets downstream of minute_bars in the same run; a WARN result does not. Backfill one
partition per run: partitioned checks do not record correctly across multi-partition runs in
dagster 1.13.

Each measure is computed once per run (`day_inputs.measures_for`): the day's coverage (expected
and present symbol-minutes) in one step that reports both checks built on it, completeness and
session bounds, and again by none of the other checks or quality_report.
"""

import dagster as dg

from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.checks.day_inputs import DAY_INPUTS, measures_for
from stock_pipelines.defs.checks.minute_bars_broker_checks import (
    minute_bars_day_volume,
    minute_bars_match_broker,
)
from stock_pipelines.defs.checks.severity import graded
from stock_pipelines.defs.tables import listing
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import LakeResource, QualityResource
from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.coverage import Coverage
from stock_pipelines.quality.render import percent

__all__ = ["minute_bars_checks"]

COMPLETENESS = "minute_bars_completeness"
SESSION_BOUNDS = "minute_bars_session_bounds"


def _completeness(cov: Coverage, complete: bool, config: QualityConfig) -> dg.AssetCheckResult:
    passed, severity = graded(cov.share >= config.warn_share, cov.share >= config.error_share)
    below = config.error_share if severity == dg.AssetCheckSeverity.ERROR else config.warn_share
    return dg.AssetCheckResult(
        check_name=COMPLETENESS,
        passed=passed,
        severity=severity,
        metadata={
            "completeness": cov.share,
            "completeness_pct": percent(cov.share),
            "error_threshold": config.error_share,
            "warn_threshold": config.warn_share,
            "expected_symbol_minutes": cov.expected_count,
            "present_symbol_minutes": cov.present_count,
            "missing_symbol_minutes": cov.expected_count - cov.present_count,
            "recovery_complete": complete,
            **listing("by_collector", cov.by_collector),
            "symbols_with_holes": dg.MetadataValue.json(sorted(set(cov.holes["symbol"].to_list()))),
            **listing("holes", cov.holes),
        },
        description=None
        if passed
        else f"{severity.value}: completeness {percent(cov.share)} below {percent(below)}",
    )


def _session_bounds(cov: Coverage) -> dg.AssetCheckResult:
    outside = cov.outside_trading_time
    passed = outside.height == 0 and not cov.closing_missing
    return dg.AssetCheckResult(
        check_name=SESSION_BOUNDS,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "outside_trading_time": outside.height,
            **listing("outside_listing", outside.select("symbol", "minute", "source")),
            "closing_print_expected": cov.closing_expected,
            "closing_print_missing": dg.MetadataValue.json(cov.closing_missing),
        },
        description=None
        if passed
        else f"{outside.height} bars outside trading time, {len(cov.closing_missing)} closing prints missing",
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            COMPLETENESS,
            asset=minute_bars,
            blocking=True,
            partitions_def=trading_day_partitions,
            additional_deps=DAY_INPUTS,
            description="present / expected symbol-minutes; expected = evidence of trades (bars, "
            "cumulative-volume jumps, gap windows; REST answers decide). WARN below "
            "STOCK_PIPELINES_COMPLETENESS_WARN (default 99.99%), ERROR (blocking) below "
            "STOCK_PIPELINES_COMPLETENESS_ERROR (default 99.9%).",
        ),
        dg.AssetCheckSpec(
            SESSION_BOUNDS,
            asset=minute_bars,
            blocking=True,
            partitions_def=trading_day_partitions,
            additional_deps=DAY_INPUTS,
            description="no bar outside the session's bar slots, and the closing print present for every "
            "symbol that traded in the closing auction. ERROR (blocking).",
        ),
    ],
    description="The day's coverage, computed once: completeness and session bounds.",
    can_subset=True,  # the UI's Execute on one of the two checks runs that one only
)
def minute_bars_coverage_checks(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, quality: QualityResource
):
    measures = measures_for(context, lake.root())
    cov = measures.coverage
    selected = {key.name for key in context.selected_asset_check_keys}
    if COMPLETENESS in selected:
        yield _completeness(cov, measures.recovery_complete, quality.config())
    if SESSION_BOUNDS in selected:
        yield _session_bounds(cov)


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    blocking=True,
    description="low <= open, close <= high; volume >= 0; no null price; one bar per symbol-minute. "
    "ERROR (blocking).",
)
def minute_bars_ohlc_invariants(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    measures = measures_for(context, lake.root())
    bars, violations = measures.inputs.bars, measures.invariants
    by_rule = dict(violations.group_by("rule").len().sort("rule").iter_rows())
    return dg.AssetCheckResult(
        passed=violations.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bars": bars.height,
            "violations": violations.height,
            "by_rule": dg.MetadataValue.json(by_rule),
            **listing("listing", violations),
        },
    )


minute_bars_checks = [
    minute_bars_coverage_checks,
    minute_bars_ohlc_invariants,
    minute_bars_day_volume,
    minute_bars_match_broker,
]
