"""What every API of the simulated exchange reads: one `SimDay` through one `SimClock`, the
injected faults and the call counters.

The minute bars a REST call returns are aggregated from exactly the trades the WebSocket has
streamed up to the same simulated instant (the newest bar may still be forming).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date

import numpy as np

from stock_pipelines.sim.clock import SimClock
from stock_pipelines.sim.day import US, MinuteBars, SimDay, SymbolTrades, bars_from_trades, symbol_history_day
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.faults import Faults
from stock_pipelines.sim.sessions import trading_session


class ExchangeState:
    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.day = SimDay(config.resolved_day(), seed=config.seed, symbols=config.symbols, activity=config.activity,
                          eager=False)
        # REST answers from per-symbol data at once; the stream needs the whole day's time index.
        threading.Thread(target=self.day.build, name="sim-day-build", daemon=True).start()
        self.clock = SimClock(config.start or self.day.session.open, speed=config.speed, pinned=config.pinned)
        self.faults = Faults(seed=config.fault_seed)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def stats_snapshot(self, ws_open: int) -> dict[str, object]:
        with self._stats_lock:
            counters = dict(self.stats)
        calls = {k.removeprefix("calls:"): v for k, v in counters.items() if k.startswith("calls:")}
        other = {k: v for k, v in counters.items() if not k.startswith("calls:")}
        return {
            "calls": calls,
            "rate_limited": other.pop("rate_limited", 0),
            "tokens_issued": other.pop("tokens_issued", 0),
            "ws_open": ws_open,
            **other,
        }

    def trades_on(self, day: date, code: str, now_us: int) -> SymbolTrades:
        """A day's trades as of now: today's up to the clock, a past day's all of them."""
        if day == self.day.day:
            return self.day.trades(code, until_us=now_us)
        return symbol_history_day(day, self.config.seed, code, self.day.symbol_index(code), self.config.activity)

    def bars_on(self, day: date, code: str, now_us: int) -> MinuteBars:
        """A day's bars as of now: today's up to the clock, a past day's whole, a future day's none."""
        if day == self.day.day:
            return self.day.minute_bars(code, until_us=now_us)
        if day > self.day.day:
            return bars_from_trades(*(np.zeros(0, np.int64),) * 4, open_us=0)
        trades = self.trades_on(day, code, now_us)
        open_us = int(trading_session(day).open.timestamp()) * US
        return bars_from_trades(trades.ts, trades.px, trades.qty, trades.cum, open_us)
