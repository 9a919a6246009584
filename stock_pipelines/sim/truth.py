"""Expected minute bars of a simulated day, built from the simulator's trade list and nothing else.

A measurement (the soak's figures, the tests) compares what the pipeline produced with these bars,
not with `SimDay.minute_bars`: that object is what the simulator's REST serves, so a wrong bar
there would be "recovered" exactly. This module shares no code with the project's bar building
(`archive/bars.py`, `sim/day.py bars_from_trades`); it applies the KRX rules on its own, trade by
trade:

- a bar is labelled by the first second of its minute (Seoul minutes; stored in UTC, which has
  the same minute boundaries since Seoul's offset is a whole number of hours);
- the opening print at the open belongs to the first bar (09:00 on a regular day);
- continuous trading runs from the open to the closing auction start (15:20); no trade may
  print inside the auction, and its single closing print at the close (15:30) is its own bar;
- open/close are the first/last trade of the minute in trade order, high/low the extremes,
  volume the summed quantity; a minute without a trade has no bar.

A trade outside those rules (before the open, inside the auction, after the close) raises: the
simulator broke a session rule and a silent re-labelling would hide it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import polars as pl

from stock_pipelines.market import Session
from stock_pipelines.market.segments import from_us, to_us
from stock_pipelines.sim.day import SimDay

COLUMNS = ("symbol", "minute", "open", "high", "low", "close", "volume")
SCHEMA = {"symbol": pl.String, "minute": pl.Datetime("us", "UTC"), "open": pl.Int64, "high": pl.Int64,
          "low": pl.Int64, "close": pl.Int64, "volume": pl.Int64}
_MINUTE_US = 60_000_000


def expected_bars(trades: Iterable[tuple[str, int, int, int]], session: Session) -> pl.DataFrame:
    """Bars from (symbol, ts epoch µs, price, qty) trades, each symbol's trades in trade order."""
    open_us = to_us(session.open)
    auction_us = to_us(session.closing_auction_start)
    close_us = to_us(session.close)
    bars: dict[tuple[str, int], list[int]] = {}  # (symbol, minute µs) -> [open, high, low, close, volume]
    for symbol, ts, price, qty in trades:
        ts, price, qty = int(ts), int(price), int(qty)
        if ts == close_us:
            minute = close_us
        elif open_us <= ts < auction_us:
            minute = ts - (ts - open_us) % _MINUTE_US
        else:
            raise ValueError(f"{symbol} trade at {datetime.fromtimestamp(ts / 1e6, UTC)} is outside "
                             f"continuous trading [{session.open}, {session.closing_auction_start}) "
                             f"and is not the closing print at {session.close}")
        bar = bars.get((symbol, minute))
        if bar is None:
            bars[(symbol, minute)] = [price, price, price, price, qty]
        else:
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += qty
    keys = sorted(bars)
    return pl.DataFrame(
        {
            "symbol": [s for s, _ in keys],
            "minute": [from_us(m) for _, m in keys],
            **{name: [bars[k][i] for k in keys] for i, name in enumerate(COLUMNS[2:])},
        },
        schema=SCHEMA,
    )


def sim_trades(sim) -> Iterable[tuple[str, int, int, int]]:
    """Every trade of a `SimDay`, symbol by symbol in trade order, from its raw trade columns."""
    for code in sim.codes:
        t = sim.trades(code)
        yield from zip([code] * len(t.ts), t.ts.tolist(), t.px.tolist(), t.qty.tolist(), strict=True)


def truth_bars(sim) -> pl.DataFrame:
    """The expected minute bars of every symbol of a `SimDay` (or an in-process exchange's URL)."""
    sim = getattr(getattr(sim, "exchange", None), "day", sim)
    return expected_bars(sim_trades(sim), sim.session)


def day_truth(day: date, seed: int, symbols: int, activity: float = 1.0):
    """The simulated day (every trade) and its expected bars, from the exchange's parameters alone:
    the simulator is deterministic per (seed, day, symbols, activity)."""
    sim = SimDay(day, seed=seed, symbols=symbols, activity=activity)
    return sim, truth_bars(sim)
