"""quality_broker_sample and quality_broker_windows: the broker's REST minute bars for the day's
sample (every window the recovery filled first, then the most active symbols, within
STOCK_PIPELINES_QUALITY_REST_CALLS calls; `quality.sample`), and the windows it answered.

Fetched in the broker pool, behind the automation permit, the shared rate limit and the broker's
circuit breaker. minute_bars_match_broker judges the final bars against them and quality_report
shows the same comparison; neither calls the broker. Not downstream of minute_bars: the check
that reads the sample is a blocking check of minute_bars, and Dagster holds every asset
downstream of minute_bars until its blocking checks pass, so the check would wait for the sample
and the sample for the check. The sample needs only what minute_bars is made of.
"""

import dagster as dg
import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.defs.assets.day_inputs import collected, trading_day
from stock_pipelines.defs.assets.tick_minute_bars import BAR_COLUMNS
from stock_pipelines.defs.broker_steps import BROKER_POOL, broker_source
from stock_pipelines.defs.io_manager import column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import BrokerResource, LakeResource, QualityResource, RedisResource
from stock_pipelines.defs.tags import QUALITY, catalog
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.quality.sample import WINDOW_SCHEMA, take_sample
from stock_pipelines.quality.store import SAMPLE_ASSET, WINDOWS_ASSET, write_broker_sample
from stock_pipelines.recovery.bars import final_bars

SAMPLE_INPUTS = ["raw_ticks", "tick_minute_bars", "recovered_minute_bars"]
WINDOW_COLUMNS = {
    "start": "the window's first minute (UTC)",
    "end": "exclusive; today only closed minutes",
    "reason": "recovered (a window the recovery filled) or active (a page of a most-traded symbol)",
}


@dg.multi_asset(
    outs={
        SAMPLE_ASSET: dg.AssetOut(
            key=SAMPLE_ASSET,
            description="The broker's REST minute bars in the day's sampled windows (every window the "
            "recovery filled first, then the most active symbols; STOCK_PIPELINES_QUALITY_REST_CALLS calls, "
            "0 = off), fetched each time it is materialized. minute_bars_match_broker compares the final "
            "bars with them.",
            metadata={"dagster/column_schema": column_schema(BAR_SCHEMA, BAR_COLUMNS)},
            **catalog(QUALITY),
        ),
        WINDOWS_ASSET: dg.AssetOut(
            key=WINDOWS_ASSET,
            description="The windows of the day's broker sample the broker answered: the bars compared are "
            "those inside them (a minute only one side has is a disagreement).",
            metadata={"dagster/column_schema": column_schema(WINDOW_SCHEMA, WINDOW_COLUMNS)},
            **catalog(QUALITY),
        ),
    },
    ins={name: lake_input(missing_ok=True) for name in SAMPLE_INPUTS},
    partitions_def=trading_day_partitions,
    group_name="quality",
    pool=BROKER_POOL,
)
def quality_broker_sample(
    context: dg.AssetExecutionContext,
    raw_ticks: pl.LazyFrame | None,
    tick_minute_bars: pl.LazyFrame | None,
    recovered_minute_bars: pl.LazyFrame | None,
    lake: LakeResource,
    quality: QualityResource,
    broker: BrokerResource,
    redis: RedisResource,
):
    day = trading_day(context)
    ticks = (
        raw_ticks.select("symbol", "qty").collect()
        if raw_ticks is not None
        else pl.DataFrame(schema={"symbol": pl.String(), "qty": pl.Int64()})
    )
    recovered = collected(recovered_minute_bars, BAR_SCHEMA)
    # with no archived trades the sample ranks symbols by the final bars' volume, as minute_bars makes them
    if ticks.height:
        bars = recovered.clear()
    else:
        bars = final_bars(collected(tick_minute_bars, BAR_SCHEMA), [recovered])
    budget = quality.config().rest_calls
    source, why = broker_source(context, broker, redis) if budget > 0 else (None, "")
    session = krx_calendar().session(day)
    sample = take_sample(day, session, ticks, recovered, bars, source, budget, clock.now(), why)
    bars_path, windows_path = write_broker_sample(day, sample, lake.root())
    yield dg.MaterializeResult(
        asset_key=SAMPLE_ASSET,
        metadata={
            "dagster/row_count": sample.bars.height,
            "path": dg.MetadataValue.path(str(bars_path)),
            "sampled": sample.sampled,
            "note": sample.note,
            "calls": sample.calls,
            "failed_windows": dg.MetadataValue.json(sample.failed),
        },
    )
    yield dg.MaterializeResult(
        asset_key=WINDOWS_ASSET,
        metadata={
            "dagster/row_count": sample.windows.height,
            "path": dg.MetadataValue.path(str(windows_path)),
        },
    )
