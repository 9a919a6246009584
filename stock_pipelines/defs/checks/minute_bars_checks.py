"""RFC-008 checks on minute_bars, one result per trading-day partition (thin wrappers over
`stock_pipelines.quality`). Every ERROR check is blocking: a failing day does not feed the
assets downstream of minute_bars in the same run. Backfill one partition per run: partitioned
checks do not record correctly across multi-partition runs in dagster 1.13.
"""

from datetime import date

import dagster as dg
import polars as pl

from stock_pipelines import lake
from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.broker_steps import BROKER_POOL, broker_source
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import BrokerResource, QualityResource, RedisResource
from stock_pipelines.ops import clock
from stock_pipelines.quality.consistency import day_volume, invariant_violations
from stock_pipelines.quality.coverage import compute_coverage
from stock_pipelines.quality.day import DayInputs, broker_check, load_day
from stock_pipelines.quality.day_totals import DayTotals
from stock_pipelines.quality.render import percent
from stock_pipelines.quality.store import TOTALS_ASSET, read_day_totals, write_broker_check

RECOVERED = dg.AssetKey("recovered_minute_bars")
GAP_REPORT = dg.AssetKey("gap_report")
# what `load_day` reads besides minute_bars: the checks run after them when a run makes them
DAY_INPUTS = [dg.AssetKey("raw_ticks"), GAP_REPORT, RECOVERED]
MAX_LISTED = 25


def inputs_for(partition_key: str) -> DayInputs:
    try:
        return load_day(date.fromisoformat(partition_key))
    except lake.PartitionMissing as error:
        raise dg.Failure(f"{error}: materialize minute_bars[{partition_key}] first") from error


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, partition_key: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]), limit=1
    ).records
    return records[0] if records and records[0].asset_materialization is not None else None


def recovery_complete(instance: dg.DagsterInstance, partition_key: str) -> bool:
    """True when the latest recovered_minute_bars of the partition reported no unrecovered window
    and was made from the latest gap_report (a newer gap_report may hold gaps it never saw)."""
    recovered = _latest(instance, RECOVERED, partition_key)
    if recovered is None:
        return False
    gaps = _latest(instance, GAP_REPORT, partition_key)
    if gaps is not None and gaps.timestamp > recovered.timestamp:
        return False
    value = recovered.asset_materialization.metadata.get("windows_unrecovered")
    return value is not None and int(value.value) == 0


def md_table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "none"
    shown = frame.head(MAX_LISTED).with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone("Asia/Seoul").dt.strftime("%H:%M")
    )
    header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * shown.width + "\n"
    body = "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in shown.iter_rows())
    more = f"\n\n… and {frame.height - MAX_LISTED} more" if frame.height > MAX_LISTED else ""
    return header + body + more


def _coverage(context: dg.AssetCheckExecutionContext):
    inputs = inputs_for(context.partition_key)
    complete = recovery_complete(context.instance, context.partition_key)
    cov = compute_coverage(
        inputs.day,
        inputs.bars,
        inputs.ticks,
        inputs.gaps,
        inputs.recovered,
        recovery_complete=complete,
        session=inputs.session,
    )
    return cov, complete


def _coverage_metadata(cov, complete: bool, threshold: float) -> dict:
    symbols = sorted(set(cov.holes["symbol"].to_list()))
    return {
        "completeness": cov.share,
        "completeness_pct": percent(cov.share),
        "threshold": threshold,
        "expected_symbol_minutes": cov.expected_count,
        "present_symbol_minutes": cov.present_count,
        "missing_symbol_minutes": cov.expected_count - cov.present_count,
        "recovery_complete": complete,
        "by_collector": dg.MetadataValue.md(md_table(cov.by_collector)),
        "symbols_with_holes": dg.MetadataValue.json(symbols),
        "holes": dg.MetadataValue.md(md_table(cov.holes)),
    }


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    blocking=True,
    description="present / expected symbol-minutes >= STOCK_PIPELINES_COMPLETENESS_ERROR (default 99.9%); "
    "expected = evidence of trades (bars, cumulative-volume jumps, gap windows; REST answers decide). Blocking.",
)
def minute_bars_completeness(context: dg.AssetCheckExecutionContext, quality: QualityResource) -> dg.AssetCheckResult:
    cov, complete = _coverage(context)
    threshold = quality.config().error_share
    passed = cov.share >= threshold
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=_coverage_metadata(cov, complete, threshold),
        description=None if passed else f"completeness {percent(cov.share)} below {percent(threshold)}",
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    description="present / expected symbol-minutes >= STOCK_PIPELINES_COMPLETENESS_WARN (default 99.99%); WARN.",
)
def minute_bars_completeness_warn(
    context: dg.AssetCheckExecutionContext, quality: QualityResource
) -> dg.AssetCheckResult:
    cov, complete = _coverage(context)
    threshold = quality.config().warn_share
    return dg.AssetCheckResult(
        passed=cov.share >= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=_coverage_metadata(cov, complete, threshold),
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    blocking=True,
    description="no bar outside the session's bar slots, and the closing print present for every symbol "
    "that traded in the closing auction. Blocking.",
)
def minute_bars_session_bounds(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    cov, _ = _coverage(context)
    outside = cov.outside_trading_time
    passed = outside.height == 0 and not cov.closing_missing
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "outside_trading_time": outside.height,
            "outside_listing": dg.MetadataValue.md(md_table(outside.select("symbol", "minute", "source"))),
            "closing_print_expected": cov.closing_expected,
            "closing_print_missing": dg.MetadataValue.json(cov.closing_missing),
        },
        description=None
        if passed
        else f"{outside.height} bars outside trading time, {len(cov.closing_missing)} closing prints missing",
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    blocking=True,
    description="low <= open, close <= high; volume >= 0; no null price; one bar per symbol-minute. Blocking.",
)
def minute_bars_ohlc_invariants(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    bars = inputs_for(context.partition_key).bars
    violations = invariant_violations(bars)
    by_rule = dict(violations.group_by("rule").len().sort("rule").iter_rows())
    return dg.AssetCheckResult(
        passed=violations.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bars": bars.height,
            "violations": violations.height,
            "by_rule": dg.MetadataValue.json(by_rule),
            "listing": dg.MetadataValue.md(md_table(violations)),
        },
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=[*DAY_INPUTS, dg.AssetKey(TOTALS_ASSET)],
    blocking=True,
    description="per symbol, the final bars' volume equals the day's reported volume: the broker's day total "
    "where quality_broker_day_volumes fetched it, else the last cumulative volume archived; archive shortfalls "
    "(trades the ticks lack) are listed. Blocking.",
)
def minute_bars_day_volume(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    inputs = inputs_for(context.partition_key)
    totals = read_day_totals(inputs.day) or DayTotals(
        False, "not checked: quality_broker_day_volumes has not run for this day"
    )
    volume = day_volume(
        inputs.ticks,
        inputs.bars,
        totals.totals if totals.checked else None,
        inputs.session.closing_auction_start,
    )
    wrong = volume.filter(pl.col("bars_missing") != 0)
    short = volume.filter(pl.col("ticks_missing") != 0)
    behind = volume.filter(pl.col("cum_behind_broker") > 0)  # trades after the last archived one
    ahead = volume.filter(pl.col("cum_behind_broker") < 0)  # archived more than the broker reports
    after_close = volume.filter(pl.col("broker_after_close"))  # the broker counts after-hours volume
    return dg.AssetCheckResult(
        passed=wrong.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "symbols": volume.height,
            "disagreements": wrong.height,
            "disagreeing_symbols": dg.MetadataValue.json(wrong["symbol"].to_list()),
            "listing": dg.MetadataValue.md(
                md_table(
                    wrong.select(
                        "symbol", "reported", "reported_by", "last_cum", "bar_volume", "bars_missing"
                    )
                )
            ),
            "broker_checked": totals.checked,
            "broker_day_volumes": totals.note,
            "broker_calls": totals.calls,
            "broker_checked_symbols": totals.totals.height,
            "broker_failed": dg.MetadataValue.json(totals.failed),
            "broker_no_row": dg.MetadataValue.json(totals.no_row),
            "cum_behind_broker_symbols": dg.MetadataValue.json(behind["symbol"].to_list()),
            "cum_ahead_of_broker_symbols": dg.MetadataValue.json(ahead["symbol"].to_list()),
            "broker_after_close_symbols": dg.MetadataValue.json(after_close["symbol"].to_list()),
            "tick_shortfall_symbols": dg.MetadataValue.json(short["symbol"].to_list()),
            "tick_shortfalls": dg.MetadataValue.md(
                md_table(
                    short.select(
                        "symbol", "reported", "reported_by", "last_cum", "tick_volume", "ticks_missing"
                    )
                )
            ),
        },
        description=None
        if wrong.height == 0
        else f"{wrong.height} symbols: bar volume != the day's reported volume",
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=DAY_INPUTS,
    blocking=True,
    pool=BROKER_POOL,
    description="final bars equal the broker's REST bars (OHLCV) on a daily sample: every recovered window "
    "first, then the most active symbols, within STOCK_PIPELINES_QUALITY_REST_CALLS calls (0 = off). Blocking.",
)
def minute_bars_match_broker(
    context: dg.AssetCheckExecutionContext, quality: QualityResource, broker: BrokerResource, redis: RedisResource
) -> dg.AssetCheckResult:
    inputs = inputs_for(context.partition_key)
    budget = quality.config().rest_calls
    source, why = broker_source(context, broker, redis) if budget > 0 else (None, "")
    result = broker_check(inputs, source, budget, clock.now(), why)
    write_broker_check(inputs.day, result)
    disagreements = result.disagreements
    named = sorted(set(disagreements["symbol"].to_list())) if disagreements.height else []
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "sampled": result.sampled,
            "sample": result.note,
            "calls": result.calls,
            "windows": dg.MetadataValue.md(md_table(result.windows) if result.windows.height else "none"),
            "failed_windows": dg.MetadataValue.json(result.failed),
            "disagreements": disagreements.height,
            "disagreeing_symbols": dg.MetadataValue.json(named),
            "listing": dg.MetadataValue.md(md_table(disagreements)),
        },
        description=(
            f"{disagreements.height} bar fields disagree with the broker"
            if not result.passed
            else None
            if result.sampled
            else f"not sampled: {result.note}"
        ),
    )


minute_bars_checks = [
    minute_bars_completeness,
    minute_bars_completeness_warn,
    minute_bars_session_bounds,
    minute_bars_ohlc_invariants,
    minute_bars_day_volume,
    minute_bars_match_broker,
]
