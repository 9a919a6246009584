"""gap_report -> recovered_minute_bars (+ recovery_fetched_windows) -> minute_bars: fill every gap.

Thin Dagster wrappers over `stock_pipelines.recovery`: the lake IO manager reads and writes their
partitions, the broker comes from the `broker` resource, and what happened is metadata.
"""

import dagster as dg
import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA, BrokerAuthError
from stock_pipelines.defs.assets.day_inputs import collected, trading_day
from stock_pipelines.defs.assets.gap_report import TICK_COLUMNS, GapReportConfig, collectors, gap_report
from stock_pipelines.defs.assets.tick_minute_bars import BAR_COLUMNS
from stock_pipelines.defs.broker_steps import BROKER_POOL, launched_by, permit
from stock_pipelines.defs.io_manager import LAKE, column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, LakeResource, RedisResource
from stock_pipelines.defs.tables import rows_table
from stock_pipelines.defs.tags import RECOVERY, catalog
from stock_pipelines.lake import partition_exists, read_partition
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.recovery.bars import bars_within, final_bars, gaps_from_frame, tier1_bars
from stock_pipelines.recovery.chain import unproven_windows
from stock_pipelines.recovery.detect import tier1_coverage
from stock_pipelines.recovery.execute import WindowOutcome, execute_plan
from stock_pipelines.recovery.plan import (
    build_plan,
    clipped_to,
    lower_bound_calls,
    missing_slots,
    symbol_windows,
)
from stock_pipelines.recovery.reuse import (
    FETCHED_ASSET,
    FETCHED_SCHEMA,
    done_windows,
    fetched_frame,
    reusable_bars,
)

__all__ = ["GapReportConfig", "gap_report", "minute_bars", "recovered_minute_bars"]

MAX_LISTED = 25
RECOVERED = "recovered_minute_bars"
FETCHED_COLUMNS = {
    "end": "the closed part only: bars in [start, end) are final",
    "fetched_at": "when the broker was asked",
}


def _previous(name: str, day, root, schema: dict) -> pl.DataFrame:
    """This asset's own partition as an earlier run of the day left it (empty: none)."""
    if partition_exists(name, day, root):
        return read_partition(name, day, root)
    return pl.DataFrame(schema=schema)


@dg.multi_asset(
    partitions_def=trading_day_partitions,
    ins={
        "gap_report": lake_input(missing_ok=True),
        "tick_minute_bars": lake_input(missing_ok=True),
        "raw_ticks": lake_input(missing_ok=True),
    },
    outs={
        RECOVERED: dg.AssetOut(
            key=RECOVERED,
            description="Bars for every gap window: tier 1 from another collector's archive (no API cost), "
            "tier 2 from the broker's REST minute bars under the shared rate limit, most active symbols "
            "first.",
            metadata={"dagster/column_schema": column_schema(BAR_SCHEMA, BAR_COLUMNS)},
            io_manager_key=LAKE,
            **catalog(RECOVERY),
        ),
        FETCHED_ASSET: dg.AssetOut(
            key=FETCHED_ASSET,
            description="Every window the broker answered today, with when: a later run of the day reuses "
            "their closed minutes instead of asking again (recovery.reuse).",
            metadata={"dagster/column_schema": column_schema(FETCHED_SCHEMA, FETCHED_COLUMNS)},
            io_manager_key=LAKE,
            **catalog(RECOVERY),
        ),
    },
    group_name="recovery",
    pool=BROKER_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "every_gap_recovered", asset=RECOVERED, blocking=False, partitions_def=trading_day_partitions
        )
    ],
)
def recovered_minute_bars(
    context: dg.AssetExecutionContext,
    gap_report: pl.LazyFrame | None,
    tick_minute_bars: pl.LazyFrame | None,
    raw_ticks: pl.LazyFrame | None,
    lake: LakeResource,
    redis: RedisResource,
    archive: ArchiveResource,
    broker: BrokerResource,
):
    day = trading_day(context)
    root = lake.root()
    gaps = gaps_from_frame(gap_report.collect()) if gap_report is not None else []
    ticks = collected(raw_ticks, TICK_COLUMNS)
    tick_bars = collected(tick_minute_bars, BAR_SCHEMA)
    coverage = tier1_coverage(gaps, collectors(context, day, ticks, redis, archive))
    activity = dict(ticks.group_by("symbol").agg(pl.col("qty").sum()).iter_rows()) if ticks.height else {}
    today = clock.now().date()
    broker_name = broker.name()
    fetched_before = _previous(FETCHED_ASSET, day, root, FETCHED_SCHEMA)
    done = done_windows(fetched_before, broker_name)
    session = krx_calendar().session(day)
    # where the archive's cum chain proves no trade missing, its bars are whole: no call for those
    unproven = unproven_windows(ticks, session)
    plan = build_plan(gaps, day, today=today, activity=activity, covered=coverage, fetched=done,
                      unproven=unproven)
    # the symbol-minutes only the broker can give: the gaps' minutes, overlaps merged, less tier 1,
    # less what the chain proves
    suspected = symbol_windows(gaps, coverage, session.close)
    missing = symbol_windows(gaps, coverage, session.close, unproven=unproven)
    still_missing = symbol_windows(gaps, coverage, session.close, fetched=done, unproven=unproven)
    covered = tier1_bars(tick_bars, coverage)
    earlier = _previous(RECOVERED, day, root, BAR_SCHEMA)
    reused = bars_within(reusable_bars(earlier, done, broker_name), missing)
    metadata: dict[str, object] = {
        "gaps": len(gaps),
        "missing_symbol_minutes": missing_slots(missing, day),
        "chain_pruned_symbol_minutes": missing_slots(suspected, day) - missing_slots(missing, day),
        "windows_planned": len(plan),
        "calls_planned": sum(w.calls for w in plan),
        # what this run must ask for (earlier runs' answers are reused), at the endpoint's page size
        "lower_bound_calls": lower_bound_calls(still_missing, day, today=today),
        "tier1_bars": covered.height,
        "windows_reused": sum(len(w) for w in done.values()),
        "rest_bars_reused": reused.height,
    }
    decision = permit(context, redis) if plan else None
    metadata["launched_by"] = launched_by(context.run.tags) or "a person"
    if decision is not None and not decision.allowed:
        rest = pl.DataFrame(schema=BAR_SCHEMA)
        unrecovered = [WindowOutcome(window, "skipped", detail=decision.describe()) for window in plan]
        fetched_now = pl.DataFrame(schema=FETCHED_SCHEMA)
        metadata.update(calls=0, windows_recovered=0, windows_unrecovered=len(plan), rest_bars=0,
                        stopped=decision.describe(),
                        unrecovered=_unrecovered_table(unrecovered))
    elif plan:
        try:
            source, gate = broker.source(redis.client())
        except BrokerAuthError as error:
            raise dg.Failure(str(error)) from None
        step = max(1, len(plan) // 10)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                context.log.info(f"recovery: {done}/{total} windows fetched, {source.calls} calls")

        # before any fetch: every minute closed by now was closed at each fetch, so it is final
        fetch_started = clock.now()
        try:
            result = execute_plan(plan, source, day, gate=gate, progress=progress)
        except BrokerAuthError as error:
            raise dg.Failure(str(error)) from None
        fetch_ended = clock.now()
        # a fetch spanning two gaps also returned the minutes between them: the archive's bars stand there
        rest = bars_within(result.bars, missing)
        unrecovered = result.unrecovered
        answered = clipped_to((o.window for o in result.outcomes if o.status == "recovered"), missing)
        fetched_now = fetched_frame(answered, broker_name, fetch_started)
        metadata.update(
            broker=broker_name,
            calls=source.calls,
            retries=dg.MetadataValue.json(dict(source.retries)),
            windows_recovered=len(plan) - len(unrecovered),
            windows_unrecovered=len(unrecovered),
            rest_bars=rest.height,
            rejected_rows=dg.MetadataValue.json(dict(result.rejected)),
            stopped=result.stopped or "",
            unrecovered=_unrecovered_table(unrecovered),
            rate_limiter_fallback=bool(getattr(source.limiter, "in_fallback", False)),
            # the project clock around the calls: which day it was decides the broker's page
            fetch_started=fetch_started.isoformat(),
            fetch_ended=fetch_ended.isoformat(),
        )
    else:
        rest, unrecovered = pl.DataFrame(schema=BAR_SCHEMA), []
        fetched_now = pl.DataFrame(schema=FETCHED_SCHEMA)
        metadata.update(calls=0, windows_recovered=0, windows_unrecovered=0, rest_bars=0)
    bars = final_bars(pl.DataFrame(schema=BAR_SCHEMA), [rest, reused, covered])
    # the bars first, then the record of what they hold: a crash between the two costs a re-fetch,
    # never a window recorded as done whose bars were not written
    yield dg.Output(bars, output_name=RECOVERED, metadata=metadata)
    yield dg.Output(pl.concat([fetched_before, fetched_now]), output_name=FETCHED_ASSET)
    yield dg.AssetCheckResult(
        check_name="every_gap_recovered",
        asset_key=RECOVERED,
        passed=not unrecovered,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"windows_unrecovered": len(unrecovered), "stopped": metadata.get("stopped", "")},
        description=None if not unrecovered else f"{len(unrecovered)} windows still missing",
    )


@dg.asset(
    partitions_def=trading_day_partitions,
    ins={
        "tick_minute_bars": lake_input(missing_ok=True),
        "recovered_minute_bars": lake_input(missing_ok=True),
    },
    group_name="recovery",
    description="The final minute bars of the day: one bar per symbol-minute, recovered bars inside gaps, "
    "tick bars elsewhere, a `source` column for lineage.",
    metadata={"dagster/column_schema": column_schema(BAR_SCHEMA, BAR_COLUMNS)},
    io_manager_key=LAKE,
    **catalog(RECOVERY),
)
def minute_bars(
    context: dg.AssetExecutionContext,
    tick_minute_bars: pl.LazyFrame | None,
    recovered_minute_bars: pl.LazyFrame | None,
) -> dg.Output[pl.DataFrame]:
    trading_day(context)
    bars = final_bars(collected(tick_minute_bars, BAR_SCHEMA), [collected(recovered_minute_bars, BAR_SCHEMA)])
    by_source = dict(bars.group_by("source").len().sort("source").iter_rows())
    return dg.Output(
        bars,
        metadata={"bars_by_source": dg.MetadataValue.json(by_source), "symbols": bars["symbol"].n_unique()},
    )


def _unrecovered_table(outcomes) -> dg.TableMetadataValue:
    columns = [("symbol", "string"), ("window", "string"), ("status", "string"), ("detail", "string")]
    rows = [
        {"symbol": o.window.symbol, "window": f"{o.window.start:%H:%M}-{o.window.end:%H:%M}",
         "status": o.status, "detail": o.detail[:80]}
        for o in outcomes[:MAX_LISTED]
    ]
    return rows_table(columns, rows)
