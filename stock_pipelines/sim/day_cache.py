"""The simulated days an exchange holds: generated when first needed, least recently used evicted.

A day is deterministic per (seed, date), so an evicted day comes back byte-identical when asked
for again; the cap only bounds memory. A day asked for with `stream=True` also gets its
whole-universe time index built on a background thread (what the WebSocket needs); REST calls
read per-symbol data, which a day generates on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date

from stock_pipelines.sim.day import SimDay


class DayCache:
    def __init__(self, seed: int, symbols: int, activity: float, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"the day cache must hold at least one day, not {cap}")
        self.seed, self.symbols, self.activity, self.cap = seed, symbols, activity, cap
        self._days: OrderedDict[date, SimDay] = OrderedDict()
        self._lock = threading.Lock()
        self.generated = 0  # days created, re-creations after eviction included
        self.evicted = 0

    def get(self, day: date, stream: bool = False) -> SimDay:
        """The day (NotATradingDay for a closed one); with `stream`, its time index is being built."""
        with self._lock:
            sim = self._days.get(day)
            if sim is None:
                sim = SimDay(day, seed=self.seed, symbols=self.symbols, activity=self.activity, eager=False)
                self._days[day] = sim
                self.generated += 1
                while len(self._days) > self.cap:
                    self._days.popitem(last=False)
                    self.evicted += 1
            else:
                self._days.move_to_end(day)
        if stream and not sim.ready:
            sim.build_in_background()
        return sim

    def held(self) -> list[date]:
        """Days in memory, least recently used first."""
        with self._lock:
            return list(self._days)
