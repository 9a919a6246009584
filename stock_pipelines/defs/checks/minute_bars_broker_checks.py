"""The minute_bars checks that ask the broker: the day volume and the bar sample. Each runs in
the broker pool (`broker_steps.BROKER_POOL`), behind the automation permit, the shared rate
limit and the broker's circuit breaker, and stores what the broker answered for the report."""

import dagster as dg
import polars as pl
import redis

from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.broker_steps import BROKER_POOL, permit
from stock_pipelines.defs.checks.day_inputs import inputs_for
from stock_pipelines.defs.tables import listing
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.ops import clock
from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.consistency import day_volume
from stock_pipelines.quality.day import broker_check, day_totals
from stock_pipelines.quality.store import write_broker_check, write_day_totals
from stock_pipelines.settings import Settings


def broker_source(context: dg.AssetCheckExecutionContext):
    """(source, why-not): the broker client the recovery uses, under the same shared rate limit and
    behind the broker's circuit breaker; none for an automatic run while automation is off."""
    from stock_pipelines.recovery.gated_source import gated
    from stock_pipelines.recovery.sources import BreakerGate, BrokerSettings, breaker_for, build_source
    from stock_pipelines.redis_conn import redis_client

    decision = permit(context)
    if not decision.allowed:
        return None, decision.describe()
    try:
        settings = BrokerSettings.from_env()
        client = redis_client()
        client.ping()
        source = build_source(settings, client, Settings.from_env().data_dir / ".tokens", now=clock.now)
        return gated(source, BreakerGate(breaker_for(settings.broker, client))), ""
    except (BrokerError, ValueError, redis.RedisError, OSError) as error:
        return None, f"{type(error).__name__}: {error}"


@dg.asset_check(
    asset=minute_bars,
    partitions_def=trading_day_partitions,
    blocking=True,
    pool=BROKER_POOL,
    description="per symbol, the final bars' volume equals the day's reported volume: the broker's day total "
    "where fetched (STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS symbols a day, those at risk first), else the last "
    "cumulative volume archived; archive shortfalls (trades the ticks lack) are listed. ERROR (blocking).",
)
def minute_bars_day_volume(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    inputs = inputs_for(context.partition_key)
    budget = QualityConfig.from_env().day_volume_calls
    source, why = broker_source(context) if budget > 0 else (None, "")
    totals = day_totals(inputs, source, budget, clock.now(), why)
    write_day_totals(inputs.day, totals)
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
    blocking=True,
    pool=BROKER_POOL,
    description="final bars equal the broker's REST bars (OHLCV) on a daily sample: every recovered window "
    "first, then the most active symbols, within STOCK_PIPELINES_QUALITY_REST_CALLS calls (0 = off). "
    "ERROR (blocking).",
)
def minute_bars_match_broker(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    inputs = inputs_for(context.partition_key)
    budget = QualityConfig.from_env().rest_calls
    source, why = broker_source(context) if budget > 0 else (None, "")
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
