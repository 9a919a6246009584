"""The day's trade completeness as an asset check (`quality.trade_completeness`): the share of
each symbol's day volume whose trades the lake holds, proven from the cum chain and closed by the
closing print or the broker's day total (what quality_broker_day_volumes stored; this check calls
no broker). WARN below 99.99% of the day's volume, per symbol or overall; never blocking: the
day's bars are certified by the minute_bars checks alone."""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from stock_pipelines import lake
from stock_pipelines.defs.checks.severity import graded
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import LakeResource
from stock_pipelines.market import krx_calendar
from stock_pipelines.quality.store import TOTALS_ASSET, read_day_totals
from stock_pipelines.quality.trade_completeness import (
    TRADE_COLUMNS,
    WARN_SHARE,
    TradeCompleteness,
    trade_completeness,
)
from stock_pipelines.quality.trade_level import verdict

TRADES_ASSET = dg.AssetKey("recovered_trades")  # its partition is written last: the day's trades are final
NOT_FETCHED = "quality_broker_day_volumes has not run for this day"
MAX_LISTED = 200  # symbols named in one metadata entry; the count says how many there are


def load_day_trades(day: date, root: Path) -> pl.DataFrame:
    """The day's trades this check judges (symbol, ts, qty, cum): the archive's raw_ticks with
    every trade the trade tier recovered (`lake.day_trades`)."""
    if not lake.partition_exists(lake.RAW_TICKS, day, root):
        raise dg.Failure(f"raw_ticks has no partition for {day}: materialize it first")
    return lake.day_trades(root, day).select(TRADE_COLUMNS)


def day_trade_completeness(
    day: date, trades: pl.DataFrame, root: Path
) -> tuple[TradeCompleteness, str]:
    """`trades` of `day` against the day's volume (closing prints, and the broker's day totals
    when quality_broker_day_volumes fetched them), and what that asset says it fetched."""
    session = krx_calendar().session(day)
    if session is None:
        raise dg.Failure(f"{day} is not a KRX trading day")
    totals = read_day_totals(day, root)
    if totals is None:
        return trade_completeness(trades, None, session.closing_auction_start), NOT_FETCHED
    broker = totals.totals if totals.checked else None
    return trade_completeness(trades, broker, session.closing_auction_start), totals.note


def _listed(values: list) -> list:
    return values[:MAX_LISTED]


def completeness_metadata(result: TradeCompleteness, broker_note: str) -> dict[str, object]:
    totals = result.totals()
    share = totals["overall_share"]
    below = dict(result.below.rows())
    problems = dict(result.with_problems.rows())
    return {
        **{key: value for key, value in totals.items() if value is not None},
        "overall_share": dg.MetadataValue.null() if share is None else share,
        "symbols_below": dg.MetadataValue.json(dict(list(below.items())[:MAX_LISTED])),
        "symbols_unproven": dg.MetadataValue.json(_listed(result.unproven)),
        "symbol_problems": dg.MetadataValue.json(dict(list(problems.items())[:MAX_LISTED])),
        "symbols_complete_list": dg.MetadataValue.json(_listed(result.complete)),
        "listed_at_most": MAX_LISTED,
        "broker_day_volumes": broker_note,
    }


@dg.asset_check(
    name="trade_completeness",
    asset=TRADES_ASSET,
    partitions_def=trading_day_partitions,
    additional_deps=[dg.AssetKey(TOTALS_ASSET)],
    blocking=False,
    description=f"Share of each symbol's day volume whose trades are present, proven from the cum chain and "
    f"closed by the closing print or the broker's day total: WARN below {WARN_SHARE:.2%} per symbol or "
    "overall, or when a symbol's day volume is unknown or its chain is bad. Never blocks the bars' "
    "certification.",
)
def trade_completeness_check(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    day = date.fromisoformat(context.partition_key)
    root = lake.root()
    result, note = day_trade_completeness(day, load_day_trades(day, root), root)
    passed, severity = graded(result.day_complete, within_error=True)  # never ERROR: never blocks
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata=completeness_metadata(result, note),
        description=verdict(result),
    )

