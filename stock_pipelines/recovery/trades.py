"""The trade tier's plan: which trades are missing from the day's archive, where, and which of
them a per-day call budget can buy, most active symbols first.

Missing trades are found two ways. The `cum` chain proves a hole: a trade whose `cum - qty`
exceeds the previous archived trade's `cum` (or 0 for the day's first) follows missing trades,
all between the two trades' seconds. The chain cannot see the end of a day (nothing follows),
so a gap of the gap report that reaches past a symbol's last archived trade adds the window
from that trade to the gap's end. Windows already fetched by an earlier run of the day, up to
when they were fetched, are final at the broker and are not planned again: a rerun makes no call
for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from stock_pipelines.gaps.model import Gap
from stock_pipelines.gaps.sequence import sequence_gap_frame
from stock_pipelines.market import Session

ONE_SECOND = timedelta(seconds=1)
Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class TradeWindow:
    symbol: str
    start: datetime  # UTC, [start, end)
    end: datetime
    missing_volume: int | None  # proven by the cum chain; None past the last archived trade
    estimated_trades: int
    rank: int  # 0 = the most active symbol


@dataclass(frozen=True)
class TradePlan:
    windows: list[TradeWindow]  # inside the budget, most active symbols first
    over_budget: list[str]  # symbols left at bar level: their windows would exceed the budget
    estimated_calls: int
    budget_left: int


def missing_windows(trades: pl.DataFrame, gaps: Iterable[Gap], session: Session,
                    activity: Mapping[str, int]) -> list[TradeWindow]:
    """Every window of the day with trades missing from `trades` (symbol, ts, qty, cum)."""
    ranking = {s: i for i, s in enumerate(sorted(activity, key=lambda s: (-activity[s], s)))}
    open_, close_end = session.open.astimezone(UTC), session.close.astimezone(UTC) + ONE_SECOND
    per_symbol = {key[0]: frame for key, frame in trades.partition_by("symbol", as_dict=True).items()}
    mean_qty = {s: max(1.0, f["qty"].mean() or 1.0) for s, f in per_symbol.items()}
    windows: list[TradeWindow] = []
    # the chain's holes (gaps.sequence), less the overlaps it also reports (negative `missing`)
    holes = sequence_gap_frame(trades, session.day).filter(pl.col("missing") > 0)
    for symbol, start, end, volume in holes.select("symbol", "start", "end", "missing").iter_rows():
        windows.append(TradeWindow(symbol, start.astimezone(UTC), end.astimezone(UTC) + ONE_SECOND, volume,
                                   math.ceil(volume / mean_qty[symbol]), ranking.get(symbol, len(ranking))))
    last_ts = {s: f["ts"].max() for s, f in per_symbol.items()}
    rate = {s: f.height / max(1.0, (f["ts"].max() - open_).total_seconds()) for s, f in per_symbol.items()}
    for gap in gaps:
        gap_end = min(gap.end.astimezone(UTC) + ONE_SECOND, close_end)
        for symbol in gap.symbols:
            start = last_ts.get(symbol, open_)
            if start is not None and start < gap_end:
                estimate = math.ceil(rate.get(symbol, 0.1) * (gap_end - start).total_seconds())
                windows.append(TradeWindow(symbol, start, gap_end, None, max(1, estimate),
                                           ranking.get(symbol, len(ranking))))
    return _merged(windows)


def plan_trades(windows: Sequence[TradeWindow], done: Mapping[str, Sequence[Window]], rows_per_call: int,
                budget: int) -> TradePlan:
    """The windows not yet fetched that fit the day's remaining call `budget`, a symbol whole or
    not at all, in order of activity; the symbols that do not fit are named."""
    todo = not_fetched(windows, done)
    by_symbol: dict[str, list[TradeWindow]] = {}
    for window in sorted(todo, key=lambda w: (w.rank, w.symbol, w.start)):
        by_symbol.setdefault(window.symbol, []).append(window)
    chosen: list[TradeWindow] = []
    over: list[str] = []
    left = budget
    for symbol, symbol_windows in by_symbol.items():
        cost = sum(estimated_calls(w, rows_per_call) for w in symbol_windows)
        if cost <= left:
            chosen += symbol_windows
            left -= cost
        else:
            over.append(symbol)
    return TradePlan(chosen, over, budget - left, left)


def not_fetched(windows: Sequence[TradeWindow], done: Mapping[str, Sequence[Window]]) -> list[TradeWindow]:
    """The windows no earlier fetch of the day covers whole (a fetched window's trades are final)."""
    return [w for w in windows if not any(s <= w.start and w.end <= e for s, e in done.get(w.symbol, ()))]


def estimated_calls(window: TradeWindow, rows_per_call: int) -> int:
    """Pages of `rows_per_call` for the window's trades, plus one: pages overlap at their boundary second."""
    return math.ceil(window.estimated_trades / rows_per_call) + 1


def lower_bound_calls(missing_trades: Mapping[str, int], rows_per_call: int) -> int:
    """The fewest calls that can return the missing trades: a page per `rows_per_call`, per symbol."""
    return sum(math.ceil(n / rows_per_call) for n in missing_trades.values() if n > 0)


def _merged(windows: list[TradeWindow]) -> list[TradeWindow]:
    """Overlapping windows of a symbol joined (volumes added when both are known)."""
    result: list[TradeWindow] = []
    for w in sorted(windows, key=lambda w: (w.symbol, w.start)):
        last = result[-1] if result else None
        if last is not None and last.symbol == w.symbol and w.start <= last.end:
            volume = None if last.missing_volume is None or w.missing_volume is None else (
                last.missing_volume + w.missing_volume)
            result[-1] = TradeWindow(w.symbol, last.start, max(last.end, w.end), volume,
                                     last.estimated_trades + w.estimated_trades, min(last.rank, w.rank))
        else:
            result.append(w)
    return result

