"""gap_report -> recovered_minute_bars -> minute_bars: find every gap of a day and fill it.

Thin Dagster wrappers over `stock_pipelines.recovery`: they read and write lake partitions,
build the broker client from the environment and report what happened as metadata.
"""

from collections import Counter
from datetime import date, datetime

import dagster as dg
import polars as pl
import redis

from stock_pipelines import lake, markdown_tables
from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.brokers.model import BAR_SCHEMA, BrokerAuthError
from stock_pipelines.defs.broker_steps import BROKER_POOL, launched_by, permit
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.gaps.summary import gaps_frame, minutes_lost
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.ops.governance import configured_broker
from stock_pipelines.recovery.bars import bars_within, empty_gaps_frame, final_bars, gaps_from_frame, tier1_bars
from stock_pipelines.recovery.detect import collectors_of_day, detect_gaps, requested_gaps, tier1_coverage
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
from stock_pipelines.recovery.sources import BreakerGate, BrokerSettings, breaker_for, build_source
from stock_pipelines.redis_conn import redis_client
from stock_pipelines.settings import Settings

MAX_LISTED = 25


class GapReportConfig(dg.Config):
    """Set by the heartbeat sensor: who asked and for which windows. Every gap of the day is found
    again from the heartbeats and the archive; a requested window they do not cover yet (the
    outage is still young) is added as downtime (`recovery.detect.requested_gaps`)."""

    requested_by: str = ""
    requested_windows: list[str] = []


def _reported_volumes(day: date) -> dict[str, int]:
    """The broker's day volumes minute_bars_day_volume stored for the day, if it ran: trades
    after a symbol's last archived trade are a gap only they reveal."""
    from stock_pipelines.quality.store import read_day_totals

    totals = read_day_totals(day)
    return dict(totals.totals.iter_rows()) if totals is not None and totals.checked else {}


def _day(context: dg.AssetExecutionContext) -> date:
    day = date.fromisoformat(context.partition_key)
    if not krx_calendar().is_trading_day(day):
        raise dg.Failure(f"{day} is not a KRX trading day")
    return day


def _read(asset: str, day: date, empty: pl.DataFrame | dict) -> pl.DataFrame:
    if lake.partition_exists(asset, day):
        return lake.read_partition(asset, day)
    return empty if isinstance(empty, pl.DataFrame) else pl.DataFrame(schema=empty)


def _store(context: dg.AssetExecutionContext) -> HeartbeatStore | None:
    try:
        client = redis_client()
        client.ping()
        return HeartbeatStore(client)
    except (redis.RedisError, OSError) as error:
        context.log.warning(f"Redis unreachable ({type(error).__name__}): using the archive's system streams")
        return None


def _now_if_today(day: date) -> datetime | None:
    now = clock.now()  # STOCK_PIPELINES_FAKE_NOW in tests; the real clock otherwise
    return now if now.date() == day else None


def _collectors(context: dg.AssetExecutionContext, day: date, ticks: pl.DataFrame):
    archive = ArchiveConfig.from_env()
    return collectors_of_day(day, ticks, _store(context), archive.archive_dir)


def _universe(day: date, ticks: pl.DataFrame) -> list[str]:
    symbols = set(ticks.get_column("symbol").unique().to_list()) if ticks.height else set()
    previous = krx_calendar().previous_trading_day(day)
    if previous is not None and lake.partition_exists("raw_ticks", previous):
        symbols |= set(lake.scan_partition("raw_ticks", previous).select("symbol").unique().collect()["symbol"])
    return sorted(symbols)


@dg.asset(
    partitions_def=trading_day_partitions,
    deps=["raw_ticks"],
    group_name="recovery",
    description="Every gap of the day: collector downtime (heartbeats), silence (zombie collectors) and "
    "sequence gaps (cumulative-volume jumps), clipped to trading time.",
)
def gap_report(context: dg.AssetExecutionContext, config: GapReportConfig) -> dg.MaterializeResult:
    day = _day(context)
    ticks = _read("raw_ticks", day, {"collector": pl.String, "symbol": pl.String})
    collectors = _collectors(context, day, ticks)
    problems: Counter[str] = Counter()
    gaps = detect_gaps(day, ticks, collectors, universe=_universe(day, ticks), now=_now_if_today(day),
                       archive_root=ArchiveConfig.from_env().archive_dir, problems=problems,
                       reported_volumes=_reported_volumes(day))
    for problem, count in problems.items():
        context.log.warning(f"gap evidence not readable: {count} x {problem}")
    if config.requested_windows:
        gaps = sorted(
            gaps + requested_gaps(config.requested_windows, config.requested_by, gaps, collectors),
            key=lambda g: (g.start, g.collector, g.kind.value),
        )
    frame = gaps_frame(gaps)
    lake.write_partition(frame, "gap_report", day)
    lost = minutes_lost(gaps)
    symbols = sorted({s for g in gaps for s in g.symbols})
    history = {c.collector: c.history_source for c in collectors}
    listing = frame.head(MAX_LISTED).with_columns(
        pl.col("start", "end").dt.strftime("%H:%M:%S"), pl.col("symbols").list.len().alias("symbols")
    )
    return dg.MaterializeResult(
        metadata={
            "gaps": len(gaps),
            "symbols_affected": len(symbols),
            "minutes_lost": dg.MetadataValue.md(_markdown(lost) if lost.height else "no gaps"),
            "gaps_table": dg.MetadataValue.md(_markdown(listing) if listing.height else "no gaps"),
            "heartbeat_history_source": dg.MetadataValue.json(history),
            "collectors": len(collectors),
            "unreadable_evidence": dg.MetadataValue.json(dict(problems)),
            "requested_by": config.requested_by or "manual",
            "requested_windows": dg.MetadataValue.json(list(config.requested_windows)),
        }
    )


@dg.asset(
    partitions_def=trading_day_partitions,
    deps=["gap_report", "tick_minute_bars"],
    group_name="recovery",
    pool=BROKER_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "every_gap_recovered", asset="recovered_minute_bars", blocking=False, partitions_def=trading_day_partitions
        )
    ],
    description="Bars for every gap window: tier 1 from another collector's archive (no API cost), tier 2 "
    "from the broker's REST minute bars under the shared rate limit, most active symbols first.",
)
def recovered_minute_bars(context: dg.AssetExecutionContext):
    day = _day(context)
    gaps = gaps_from_frame(_read("gap_report", day, empty_gaps_frame()))
    ticks = _read("raw_ticks", day, {"collector": pl.String, "symbol": pl.String, "qty": pl.Int64})
    tick_bars = _read("tick_minute_bars", day, BAR_SCHEMA)
    coverage = tier1_coverage(gaps, _collectors(context, day, ticks))
    activity = (
        dict(ticks.group_by("symbol").agg(pl.col("qty").sum()).iter_rows()) if ticks.height else {}
    )
    today = clock.now().date()
    broker = configured_broker()
    fetched_before = _read(FETCHED_ASSET, day, FETCHED_SCHEMA)
    done = done_windows(fetched_before, broker)
    plan = build_plan(gaps, day, today=today, activity=activity, covered=coverage, fetched=done)
    close = krx_calendar().session(day).close
    # the symbol-minutes only the broker can give: the gaps' minutes, overlaps merged, less tier 1
    missing = symbol_windows(gaps, coverage, close)
    still_missing = symbol_windows(gaps, coverage, close, fetched=done)
    covered = tier1_bars(tick_bars, coverage)
    reused = bars_within(reusable_bars(_read("recovered_minute_bars", day, BAR_SCHEMA), done, broker), missing)
    metadata: dict[str, object] = {
        "gaps": len(gaps),
        "missing_symbol_minutes": missing_slots(missing, day),
        "windows_planned": len(plan),
        "calls_planned": sum(w.calls for w in plan),
        # what this run must ask for (earlier runs' answers are reused), at the endpoint's page size
        "lower_bound_calls": lower_bound_calls(still_missing, day, today=today),
        "tier1_bars": covered.height,
        "windows_reused": sum(len(w) for w in done.values()),
        "rest_bars_reused": reused.height,
    }
    decision = permit(context) if plan else None
    metadata["launched_by"] = launched_by(context.run.tags) or "a person"
    if decision is not None and not decision.allowed:
        rest, unrecovered = pl.DataFrame(schema=BAR_SCHEMA), [
            WindowOutcome(window, "skipped", detail=decision.describe()) for window in plan
        ]
        fetched_now = pl.DataFrame(schema=FETCHED_SCHEMA)
        metadata.update(calls=0, windows_recovered=0, windows_unrecovered=len(plan), rest_bars=0,
                        stopped=decision.describe(),
                        unrecovered=dg.MetadataValue.md(_unrecovered_markdown(unrecovered)))
    elif plan:
        settings = BrokerSettings.from_env()
        client = redis_client()
        source = build_source(settings, client, Settings.from_env().data_dir / ".tokens", now=clock.now)
        gate = BreakerGate(breaker_for(settings.broker, client))
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
        # a fetch spanning two gaps also returned the minutes between them: the archive's bars stand there
        rest = bars_within(result.bars, missing)
        unrecovered = result.unrecovered
        answered = clipped_to((o.window for o in result.outcomes if o.status == "recovered"), missing)
        fetched_now = fetched_frame(answered, broker, fetch_started)
        metadata.update(
            broker=settings.broker,
            calls=source.calls,
            retries=dg.MetadataValue.json(dict(source.retries)),
            windows_recovered=len(plan) - len(unrecovered),
            windows_unrecovered=len(unrecovered),
            rest_bars=rest.height,
            rejected_rows=dg.MetadataValue.json(dict(result.rejected)),
            stopped=result.stopped or "",
            unrecovered=dg.MetadataValue.md(_unrecovered_markdown(unrecovered) if unrecovered else "none"),
            rate_limiter_fallback=bool(getattr(source.limiter, "in_fallback", False)),
        )
    else:
        rest, unrecovered = pl.DataFrame(schema=BAR_SCHEMA), []
        fetched_now = pl.DataFrame(schema=FETCHED_SCHEMA)
        metadata.update(calls=0, windows_recovered=0, windows_unrecovered=0, rest_bars=0)
    bars = final_bars(pl.DataFrame(schema=BAR_SCHEMA), [rest, reused, covered])
    # the bars first, then the record of what they hold: a crash between the two costs a re-fetch,
    # never a window recorded as done whose bars were not written
    lake.write_partition(bars, "recovered_minute_bars", day)
    lake.write_partition(pl.concat([fetched_before, fetched_now]), FETCHED_ASSET, day)
    metadata["dagster/row_count"] = bars.height
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="every_gap_recovered",
        passed=not unrecovered,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"windows_unrecovered": len(unrecovered), "stopped": metadata.get("stopped", "")},
        description=None if not unrecovered else f"{len(unrecovered)} windows still missing",
    )


@dg.asset(
    partitions_def=trading_day_partitions,
    deps=["tick_minute_bars", "recovered_minute_bars"],
    group_name="recovery",
    description="The final minute bars of the day: one bar per symbol-minute, recovered bars inside gaps, "
    "tick bars elsewhere, a `source` column for lineage.",
)
def minute_bars(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    day = _day(context)
    bars = final_bars(_read("tick_minute_bars", day, BAR_SCHEMA), [_read("recovered_minute_bars", day, BAR_SCHEMA)])
    lake.write_partition(bars, "minute_bars", day)
    by_source = dict(bars.group_by("source").len().sort("source").iter_rows())
    return dg.MaterializeResult(
        metadata={"dagster/row_count": bars.height, "bars_by_source": dg.MetadataValue.json(by_source),
                  "symbols": bars["symbol"].n_unique()}
    )


def _markdown(frame: pl.DataFrame) -> str:
    return markdown_tables.table(frame.columns, frame.iter_rows())


def _unrecovered_markdown(outcomes) -> str:
    rows = [
        (o.window.symbol, f"{o.window.start:%H:%M}-{o.window.end:%H:%M}", o.status, o.detail[:80])
        for o in outcomes[:MAX_LISTED]
    ]
    listing = markdown_tables.table(("symbol", "window", "status", "detail"), rows)
    return listing + markdown_tables.more(len(outcomes), MAX_LISTED)
