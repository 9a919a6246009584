"""Run the trade tier's plan: fetch each window's trades under the breaker, keep only the
trades the archive lacks, and record what was asked so a later run of the day does not ask again.

Recovered trades get the raw_ticks columns, `source` naming the broker endpoint (`rest_kis`,
`rest_kiwoom`), no receive time, sequence, collector or file. They merge with the archive by
`(symbol, cum)`, an archived trade always winning.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from stock_pipelines.archive.ticks import TICKS_SCHEMA
from stock_pipelines.brokers.model import BrokerAuthError, BrokerError
from stock_pipelines.brokers.trades import TRADE_SCHEMA, TradeFetch, TradeHistorySource
from stock_pipelines.recovery.execute import AlwaysAllow, CallGate
from stock_pipelines.recovery.trades import TradeWindow, Window

TRADE_WINDOWS_SCHEMA = {
    "symbol": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),  # cut at fetched_at: trades in [start, end) are final
    "broker": pl.String(),
    "calls": pl.Int64(),
    "fetched_at": pl.Datetime("us", "UTC"),
}


@dataclass
class TradeRunResult:
    trades: pl.DataFrame  # TRADE_SCHEMA, inside the windows
    answered: list[tuple[TradeWindow, int]] = field(default_factory=list)  # window, calls
    failed: list[tuple[str, str]] = field(default_factory=list)  # symbol, why
    rejected: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None


def fetch_trades(windows: list[TradeWindow], source: TradeHistorySource, day: date,
                 gate: CallGate | None = None, workers: int = 4) -> TradeRunResult:
    """One task per symbol (its windows in order), `workers` at a time, most active first. A
    refused credential stops the run; a breaker that opens stops what is not started yet."""
    gate = gate or AlwaysAllow()
    by_symbol: dict[str, list[TradeWindow]] = {}
    for window in windows:
        by_symbol.setdefault(window.symbol, []).append(window)
    result = TradeRunResult(pl.DataFrame(schema=TRADE_SCHEMA))
    frames: list[pl.DataFrame] = []

    def symbol_task(symbol: str) -> list[tuple[TradeWindow, TradeFetch]]:
        if result.stopped is not None:
            return []
        if not gate.allow():
            result.stopped = result.stopped or f"circuit breaker for {source.name} is open"
            return []
        spans = by_symbol[symbol]
        if getattr(source, "whole_day", False) and len(spans) > 1:
            # each fetch costs the pages back to the day's start: one fetch over all windows
            whole = source.trades(symbol, day, spans[0].start, max(w.end for w in spans))
            return [(spans[0], whole)] + [(w, TradeFetch(whole.trades.clear())) for w in spans[1:]]
        return [(w, source.trades(symbol, day, w.start, w.end)) for w in spans]

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="trade-recovery") as pool:
        futures = {symbol: pool.submit(symbol_task, symbol) for symbol in by_symbol}
        for symbol, future in futures.items():
            try:
                fetched = future.result()
            except BrokerAuthError as error:
                gate.on_failure(error)
                result.stopped = f"{source.name} refused the credentials: {error}"
                result.failed.append((symbol, str(error)))
                continue
            except BrokerError as error:
                gate.on_failure(error)
                result.failed.append((symbol, str(error)))
                continue
            if not fetched:
                result.failed.append((symbol, result.stopped or "not started"))
                continue
            gate.on_success()
            for window, fetch in fetched:
                frames.append(fetch.trades)
                result.rejected.update(fetch.rejected)
                result.answered.append((window, fetch.calls))
    fetched_trades = pl.concat(frames) if frames else pl.DataFrame(schema=TRADE_SCHEMA)
    result.trades = within(fetched_trades, [(w.symbol, w.start, w.end) for w, _ in result.answered])
    return result


def within(trades: pl.DataFrame, windows: list[tuple[str, datetime, datetime]]) -> pl.DataFrame:
    """The trades inside one of the (symbol, start, end) windows, once each, by (symbol, cum)."""
    if not windows or trades.height == 0:
        return pl.DataFrame(schema=TRADE_SCHEMA)
    spans = pl.DataFrame(windows, schema={"symbol": pl.String(), "start": pl.Datetime("us", "UTC"),
                                          "end": pl.Datetime("us", "UTC")}, orient="row")
    return (
        trades.join(spans, on="symbol")
        .filter((pl.col("ts") >= pl.col("start")) & (pl.col("ts") < pl.col("end")))
        .select(list(TRADE_SCHEMA))
        .unique(subset=["symbol", "cum"], keep="first")
        .sort("symbol", "cum")
    )


def as_raw_ticks(trades: pl.DataFrame) -> pl.DataFrame:
    """Recovered trades in the raw_ticks columns."""
    return trades.select(
        pl.col("source"), pl.col("symbol"), pl.col("ts"),
        pl.lit(None, TICKS_SCHEMA["rx"]).alias("rx"), pl.col("price"), pl.col("qty"), pl.col("cum"),
        pl.lit(None, pl.Int64).alias("seq"), pl.lit(None, pl.String).alias("collector"),
        pl.lit(None, pl.String).alias("file"), pl.lit(None, pl.Int64).alias("line"),
    ).cast(TICKS_SCHEMA)


def fetched_windows(answered: list[tuple[TradeWindow, int]], broker: str, fetched_at: datetime) -> pl.DataFrame:
    """The answered windows, each cut at `fetched_at` (the run's start): trades before it are final."""
    rows = [(w.symbol, w.start, min(w.end, fetched_at), broker, calls, fetched_at) for w, calls in answered]
    return pl.DataFrame(rows, schema=TRADE_WINDOWS_SCHEMA, orient="row")


def done_windows(record: pl.DataFrame, broker: str) -> dict[str, list[Window]]:
    result: dict[str, list[Window]] = {}
    for symbol, start, end in record.filter(pl.col("broker") == broker).select("symbol", "start", "end").iter_rows():
        result.setdefault(symbol, []).append((start, end))
    return result
