"""The minute_bars checks against the broker's figures: the day volume (from the day totals that
`quality_broker_day_volumes` fetched) and the bar sample (from the bars `quality_broker_sample`
fetched). Both only read what those assets stored and judge the final bars: no broker call, so
no broker pool."""

import dagster as dg
import polars as pl

from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.checks.day_inputs import DAY_INPUTS, measures_for
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import LakeResource
from stock_pipelines.defs.tables import listing
from stock_pipelines.quality.store import SAMPLE_ASSET, TOTALS_ASSET, WINDOWS_ASSET


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=[*DAY_INPUTS, dg.AssetKey(TOTALS_ASSET)],
    blocking=True,
    description="per symbol, the final bars' volume equals the day's reported volume: the broker's day total "
    "where quality_broker_day_volumes fetched it, else the last cumulative volume archived; archive shortfalls "
    "(trades the ticks lack) are listed. ERROR (blocking).",
)
def minute_bars_day_volume(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    measures = measures_for(context, lake.root())
    totals, volume = measures.totals, measures.volume
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
            **listing(
                "listing",
                wrong.select("symbol", "reported", "reported_by", "last_cum", "bar_volume", "bars_missing"),
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
            **listing(
                "tick_shortfalls",
                short.select("symbol", "reported", "reported_by", "last_cum", "tick_volume", "ticks_missing"),
            ),
        },
        description=None
        if wrong.height == 0
        else f"{wrong.height} symbols: bar volume != the day's reported volume",
    )


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    additional_deps=[*DAY_INPUTS, dg.AssetKey(SAMPLE_ASSET), dg.AssetKey(WINDOWS_ASSET)],
    blocking=True,
    description="final bars equal the broker's REST bars (OHLCV) on the daily sample quality_broker_sample "
    "fetched: every recovered window first, then the most active symbols, within "
    "STOCK_PIPELINES_QUALITY_REST_CALLS calls (0 = off; not sampled: passes and says why). ERROR (blocking).",
)
def minute_bars_match_broker(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    result = measures_for(context, lake.root()).broker
    disagreements = result.disagreements
    named = sorted(set(disagreements["symbol"].to_list())) if disagreements.height else []
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "sampled": result.sampled,
            "sample": result.note,
            "calls": result.calls,
            **listing("windows", result.windows),
            "failed_windows": dg.MetadataValue.json(result.failed),
            "disagreements": disagreements.height,
            "disagreeing_symbols": dg.MetadataValue.json(named),
            **listing("listing", disagreements),
        },
        description=(
            f"{disagreements.height} bar fields disagree with the broker"
            if not result.passed
            else None
            if result.sampled
            else f"not sampled: {result.note}"
        ),
    )
