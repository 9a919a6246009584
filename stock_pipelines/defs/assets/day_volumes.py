"""quality_broker_day_volumes: the broker's reported day volume for the day's chosen symbols, the
cross-check of the archive's last cumulative volume (`quality.day_totals`).

Upstream of gap_report: trades lost after a symbol's last archived trade leave no later `cum` to
reveal them, and the broker's day total does, so gap_report turns each shortfall into a gap to
the close and the same run recovers it. minute_bars_day_volume judges the final bars against
these figures.
"""

from datetime import date

import dagster as dg
import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.defs.assets.day_inputs import universe
from stock_pipelines.defs.broker_steps import BROKER_POOL, broker_source
from stock_pipelines.defs.io_manager import column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import BrokerResource, LakeResource, QualityResource, RedisResource
from stock_pipelines.defs.tags import RECOVERY, catalog
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.quality.consistency import day_volume
from stock_pipelines.quality.day_totals import TOTALS_SCHEMA, before_gaps_at_risk, day_totals_check
from stock_pipelines.quality.store import TOTALS_ASSET, write_day_totals

TICK_COLUMNS = {"symbol": pl.String(), "ts": pl.Datetime("us", "UTC"), "qty": pl.Int64(), "cum": pl.Int64()}


@dg.asset(
    key=TOTALS_ASSET,
    partitions_def=trading_day_partitions,
    ins={
        "raw_ticks": lake_input(missing_ok=True),
        "tick_minute_bars": lake_input(missing_ok=True),
    },
    group_name="recovery",
    pool=BROKER_POOL,
    description="The broker's day volume per symbol (one call each, STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS "
    "symbols a day: those at risk first, then a rotation through the rest); fetched once the day's volume "
    "is final. gap_report turns a day total above the last archived cum into a gap to the close.",
    metadata={
        "dagster/column_schema": column_schema(TOTALS_SCHEMA, {"broker_volume": "the broker's day volume"})
    },
    **catalog(RECOVERY),
)
def broker_day_volumes(
    context: dg.AssetExecutionContext,
    raw_ticks: pl.LazyFrame | None,
    tick_minute_bars: pl.LazyFrame | None,
    lake: LakeResource,
    quality: QualityResource,
    broker: BrokerResource,
    redis: RedisResource,
) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    session = krx_calendar().session(day)
    ticks = pl.DataFrame(schema=TICK_COLUMNS)
    if raw_ticks is not None:
        ticks = raw_ticks.select(list(TICK_COLUMNS)).collect()
    bars = tick_minute_bars.collect() if tick_minute_bars is not None else pl.DataFrame(schema=BAR_SCHEMA)
    volume = day_volume(ticks, bars)
    at_risk = before_gaps_at_risk(volume, ticks, session, universe(day, ticks, lake.root()))
    budget = quality.config().day_volume_calls
    source, why = broker_source(context, broker, redis) if budget > 0 else (None, "")
    totals = day_totals_check(session, volume, at_risk, source, budget, clock.now(), why)
    write_day_totals(day, totals, lake.root())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": totals.totals.height,
            "checked": totals.checked,
            "note": totals.note,
            "calls": totals.calls,
            "failed": dg.MetadataValue.json(totals.failed),
            "no_row": dg.MetadataValue.json(totals.no_row),
        }
    )
