"""What every API of the simulated exchange reads: the days (`DayCache`) through one `SimClock`,
the injected faults and the call counters.

"Today" follows the clock (`state.today()`, `state.day`): past a session's close the exchange
keeps serving that day until the next trading day's date begins, then that day. The minute bars
a REST call returns are aggregated from exactly the trades the WebSocket has streamed up to the
same simulated instant (the newest bar may still be forming).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime, timedelta

import numpy as np

from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US, to_us
from stock_pipelines.sim.clock import SimClock, exchange_today
from stock_pipelines.sim.day import MinuteBars, SimDay, SymbolTrades, bars_from_trades
from stock_pipelines.sim.day_cache import DayCache
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.faults import Faults
from stock_pipelines.sim.sessions import sim_calendar


class ExchangeState:
    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.days = DayCache(config.seed, config.symbols, config.activity, cap=config.day_cache)
        first = self.days.get(config.resolved_day(), stream=True)
        self.clock = SimClock(config.start or first.session.open, speed=config.speed, pinned=config.pinned,
                              overnight=config.overnight, night_speed=config.night_speed)
        self.faults = Faults(seed=config.fault_seed)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def today(self) -> date:
        return exchange_today(self.clock.now())

    @property
    def day(self) -> SimDay:
        """Today's day (by the clock), its stream index built in the background."""
        return self.days.get(self.today(), stream=True)

    def days_streaming(self, after_us: int, until_us: int) -> list[SimDay]:
        """The days whose trades fall in (after_us, until_us], oldest first (what a stream sends next)."""
        first = datetime.fromtimestamp(after_us / US, SEOUL).date()
        last = datetime.fromtimestamp(until_us / US, SEOUL).date()
        calendar, days = sim_calendar(), []
        for offset in range((last - first).days + 1):
            session = calendar.session(first + timedelta(days=offset))
            if session is not None and to_us(session.open) <= until_us and after_us < to_us(session.close):
                days.append(self.days.get(session.day, stream=True))
        return days

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
            "days_held": [d.isoformat() for d in self.days.held()],
            "days_generated": self.days.generated,
            **other,
        }

    def trades_on(self, day: date, code: str, now_us: int) -> SymbolTrades:
        """A day's trades as of now (a past day's all of them, a future day's none)."""
        return self.days.get(day).trades(code, until_us=now_us)

    def bars_on(self, day: date, code: str, now_us: int) -> MinuteBars:
        """A day's bars as of now: today's up to the clock, a past day's whole, a future day's none."""
        if day > self.today():
            return bars_from_trades(*(np.zeros(0, np.int64),) * 4, open_us=0)
        return self.days.get(day).minute_bars(code, until_us=now_us)
