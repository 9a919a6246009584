"""The exchange's clock: simulated Seoul time, running at a speed or pinned, across days.

REST and WebSocket read the same clock, so the bars a REST call returns and the ticks the
stream has sent agree at every instant. Changing speed or pinning re-anchors the clock at the
current simulated instant, so simulated time never jumps unless it is pinned somewhere else.

The clock runs from one session into the next over the KRX calendar, through the day windows
of `market.segments` (the ones the project clock walks too); between two windows (nights,
weekends, holidays) it runs at `night_speed` (`overnight="run"`, default: the day speed) or
jumps straight to the next window (`overnight="skip"`). A pinned clock never jumps.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime

from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US, check_speed, segment_at, to_us
from stock_pipelines.sim.sessions import sim_calendar

OVERNIGHT_MODES = ("run", "skip")


def exchange_today(now: datetime) -> date:
    """The trading day the exchange serves as "today": the Seoul date, or the last trading day before it."""
    calendar = sim_calendar()
    local = now.astimezone(SEOUL).date()
    if calendar.is_trading_day(local):
        return local
    return calendar.previous_trading_day(local) or local


class SimClock:
    def __init__(
        self, start: datetime, speed: float = 1.0, pinned: bool = False, wall=time.time,
        overnight: str = "run", night_speed: float | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start")
        speed = check_speed(speed)
        if night_speed is not None:
            night_speed = check_speed(night_speed)
        if overnight not in OVERNIGHT_MODES:
            raise ValueError(f"overnight must be one of {OVERNIGHT_MODES}, not {overnight!r}")
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor_sim_us = to_us(start)
        self._anchor_wall = wall()
        self._speed = speed
        self._night_speed = night_speed
        self._overnight = overnight
        self._pinned = pinned
        self._enter_segment()

    def _enter_segment(self) -> None:
        """Set the segment the anchor is in (its end and rate); under "skip", jump over nights."""
        while True:
            end, is_day = segment_at(self._anchor_sim_us)
            if is_day or self._overnight == "run" or self._pinned or end is None:
                break
            self._anchor_sim_us = end
        self._segment_end = end
        self._rate = self._speed if is_day else (self._night_speed or self._speed)
        if self._night_speed is None and self._overnight == "run":
            self._segment_end = None  # one speed day and night: no boundary to stop at

    def now_us(self) -> int:
        with self._lock:
            if self._pinned:
                return self._anchor_sim_us
            while True:
                now = self._anchor_sim_us + int((self._wall() - self._anchor_wall) * self._rate * US)
                if self._segment_end is None or now < self._segment_end:
                    return now
                # crossed into the next segment: re-anchor at the boundary, go on at its rate
                self._anchor_wall += (self._segment_end - self._anchor_sim_us) / self._rate / US
                self._anchor_sim_us = self._segment_end
                self._enter_segment()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_us() / US, SEOUL)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def pinned(self) -> bool:
        return self._pinned

    def rate(self) -> float:
        """Simulated seconds a wall second right now (0 when pinned)."""
        self.now_us()
        with self._lock:
            return 0.0 if self._pinned else self._rate

    def set(self, at: datetime | None = None, speed: float | None = None, pinned: bool | None = None,
            night_speed: float | None = None, overnight: str | None = None) -> None:
        """Move to `at` (default: stay), change speeds, the night mode, pin or release; all at once."""
        if at is not None and at.tzinfo is None:
            raise ValueError("give the clock a timezone-aware time (e.g. 2026-11-20T10:00:00+09:00)")
        speed = None if speed is None else check_speed(speed)
        night_speed = None if night_speed is None else check_speed(night_speed)
        if overnight is not None and overnight not in OVERNIGHT_MODES:
            raise ValueError(f"overnight must be one of {OVERNIGHT_MODES}, not {overnight!r}")
        current = self.now_us()
        with self._lock:
            self._anchor_sim_us = to_us(at) if at is not None else current
            self._anchor_wall = self._wall()
            if speed is not None:
                self._speed = speed
            if night_speed is not None:
                self._night_speed = night_speed
            if overnight is not None:
                self._overnight = overnight
            if pinned is not None:
                self._pinned = pinned
            self._enter_segment()

    def state(self) -> dict[str, object]:
        """`speed` is the rate now (the night speed at night), what a follower extrapolates with."""
        now = self.now()
        with self._lock:
            return {"now": now.isoformat(), "speed": self._rate, "pinned": self._pinned,
                    "day_speed": self._speed, "night_speed": self._night_speed or self._speed,
                    "overnight": self._overnight, "today": exchange_today(now).isoformat()}
