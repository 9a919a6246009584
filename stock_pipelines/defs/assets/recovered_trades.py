"""raw_ticks + gap_report -> recovered_trades (+ recovered_trades_windows): the third recovery
tier, after the bars. Thin Dagster wrapper over `recovery.trades` and `recovery.trades_run`.

The trades the archive lacks (holes in the `cum` chain, gaps reaching past a symbol's last
archived trade) are fetched from the broker's trade history within a per-day call budget, most
active symbols first; the symbols the budget cannot cover are named and stay at bar level. Each
run's answered windows are recorded, so a rerun of the day asks only for what is new.
`stock_pipelines.lake.day_trades` reads the archive and this asset merged by (symbol, cum).
"""

import dagster as dg
import polars as pl

from stock_pipelines.archive.ticks import TICKS_SCHEMA
from stock_pipelines.archive.trade_merge import merge_by_cum
from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.brokers.trades import trade_history
from stock_pipelines.defs.assets.day_inputs import collected, trading_day
from stock_pipelines.defs.broker_steps import BROKER_POOL, launched_by, permit
from stock_pipelines.defs.io_manager import LAKE, column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import BrokerResource, LakeResource, RedisResource
from stock_pipelines.defs.tags import RECOVERY, catalog
from stock_pipelines.lake import RECOVERED_TRADES, partition_exists, read_partition
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.recovery.bars import gaps_from_frame
from stock_pipelines.recovery.trades import lower_bound_calls, missing_windows, not_fetched, plan_trades
from stock_pipelines.recovery.trades_run import (
    TRADE_WINDOWS_SCHEMA,
    as_raw_ticks,
    done_windows,
    fetch_trades,
    fetched_windows,
)

TRADE_WINDOWS = "recovered_trades_windows"
MAX_LISTED = 25


class TradeRecoveryConfig(dg.Config):
    daily_call_budget: int = 3_000  # broker calls the trade tier may spend on one day, all runs together


def _previous(name: str, day, root, schema: dict) -> pl.DataFrame:
    if partition_exists(name, day, root):
        return read_partition(name, day, root).cast(schema)
    return pl.DataFrame(schema=schema)


@dg.multi_asset(
    partitions_def=trading_day_partitions,
    ins={"raw_ticks": lake_input(missing_ok=True), "gap_report": lake_input(missing_ok=True)},
    deps=[dg.AssetKey("recovered_minute_bars")],  # the bars tier first: it is what a short budget leaves
    outs={
        RECOVERED_TRADES: dg.AssetOut(
            key=RECOVERED_TRADES,
            description="Trades the archive lacks, fetched from the broker's trade history (KIS "
            "inquire-time-itemconclusion, Kiwoom ka10079) within a per-day call budget, most active symbols "
            "first; raw_ticks' columns, `source` rest_kis/rest_kiwoom. lake.day_trades merges them with "
            "raw_ticks by (symbol, cum), an archived trade always winning.",
            metadata={"dagster/column_schema": column_schema(TICKS_SCHEMA)},
            io_manager_key=LAKE,
            **catalog(RECOVERY),
        ),
        TRADE_WINDOWS: dg.AssetOut(
            key=TRADE_WINDOWS,
            description="Every trade window the broker answered on the day, its calls and when: a later run "
            "does not ask again for trades final by then, and the day's budget counts every run's calls.",
            metadata={"dagster/column_schema": column_schema(TRADE_WINDOWS_SCHEMA)},
            io_manager_key=LAKE,
            **catalog(RECOVERY),
        ),
    },
    group_name="recovery",
    pool=BROKER_POOL,
)
def recovered_trades(
    context: dg.AssetExecutionContext,
    config: TradeRecoveryConfig,
    raw_ticks: pl.LazyFrame | None,
    gap_report: pl.LazyFrame | None,
    lake: LakeResource,
    redis: RedisResource,
    broker: BrokerResource,
):
    day = trading_day(context)
    root = lake.root()
    session = krx_calendar().session(day)
    gaps = gaps_from_frame(gap_report.collect()) if gap_report is not None else []
    archived = collected(raw_ticks.select(list(TICKS_SCHEMA)) if raw_ticks is not None else None, TICKS_SCHEMA)
    earlier = _previous(RECOVERED_TRADES, day, root, TICKS_SCHEMA)
    record = _previous(TRADE_WINDOWS, day, root, TRADE_WINDOWS_SCHEMA)
    merged = merge_by_cum(archived, earlier)
    activity = dict(archived.group_by("symbol").agg(pl.col("qty").sum()).iter_rows()) if archived.height else {}
    windows = missing_windows(merged, gaps, session, activity)
    broker_name = broker.name()
    spent_before = int(record["calls"].sum() or 0)
    metadata: dict[str, object] = {
        "missing_windows": len(windows),
        "daily_call_budget": config.daily_call_budget,
        "calls_spent_before": spent_before,
        "calls": 0,
        "launched_by": launched_by(context.run.tags) or "a person",
    }
    recovered_now = pl.DataFrame(schema=TICKS_SCHEMA)
    fetched_now = pl.DataFrame(schema=TRADE_WINDOWS_SCHEMA)
    plan, failed = None, []
    done = done_windows(record, broker_name)
    todo = not_fetched(windows, done)
    metadata["windows_fetched_before"] = len(windows) - len(todo)
    if todo:
        try:
            client, gate = broker.source(redis.client())
        except BrokerAuthError as error:
            raise dg.Failure(str(error)) from None
        source = trade_history(client)
        budget = max(0, config.daily_call_budget - spent_before) if source.serves(day) else 0
        if not source.serves(day):
            metadata["stopped"] = f"{broker_name} keeps no trade history of {day}: the day stays at bar level"
        plan = plan_trades(todo, done, source.rows_per_call, budget)
        metadata.update(windows_planned=len(plan.windows), estimated_calls=plan.estimated_calls,
                        symbols_over_budget=dg.MetadataValue.json(plan.over_budget[:MAX_LISTED]))
        decision = permit(context, redis) if plan.windows else None
        if decision is not None and not decision.allowed:
            metadata.update(calls=0, stopped=decision.describe())
            failed = sorted({w.symbol for w in plan.windows})
        elif plan.windows:
            calls_before = source.calls
            fetch_started = clock.now()
            result = fetch_trades(plan.windows, source, day, gate=gate)
            recovered_now = as_raw_ticks(result.trades).join(merged.select("symbol", "cum"),
                                                               on=["symbol", "cum"], how="anti")
            fetched_now = fetched_windows(result.answered, broker_name, fetch_started)
            failed = [symbol for symbol, _ in result.failed]
            per_symbol = dict(recovered_now.group_by("symbol").len().iter_rows())
            metadata.update(
                broker=broker_name,
                calls=source.calls - calls_before,
                retries=dg.MetadataValue.json(dict(client.retries)),
                lower_bound_calls=lower_bound_calls(per_symbol, source.rows_per_call),
                trades_recovered=recovered_now.height,
                symbols_failed=dg.MetadataValue.json(dict(result.failed[:MAX_LISTED])),
                rejected_rows=dg.MetadataValue.json(dict(result.rejected)),
                stopped=result.stopped or "",
            )
    left_at_bar_level = sorted(set((plan.over_budget if plan else []) + failed))
    metadata["symbols_left_at_bar_level"] = dg.MetadataValue.json(left_at_bar_level[:MAX_LISTED])
    metadata["symbols_left_at_bar_level_count"] = len(left_at_bar_level)
    if left_at_bar_level:
        context.log.warning(f"trade tier: {len(left_at_bar_level)} symbols stay at bar level (over the day's "
                            f"call budget, refused or failed): {', '.join(left_at_bar_level[:MAX_LISTED])}")
    trades = pl.concat([earlier, recovered_now]).unique(subset=["symbol", "cum"], keep="first").sort("symbol", "cum")
    # the trades first, then the record of what they hold: a crash between the two costs a re-fetch
    yield dg.Output(trades, output_name=RECOVERED_TRADES, metadata=metadata)
    yield dg.Output(pl.concat([record, fetched_now]), output_name=TRADE_WINDOWS)
