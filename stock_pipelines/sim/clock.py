"""The exchange's clock: simulated Seoul time, running at a speed or pinned.

REST and WebSocket read the same clock, so the bars a REST call returns and the ticks the
stream has sent agree at every instant. Changing speed or pinning re-anchors the clock at the
current simulated instant, so simulated time never jumps unless it is pinned somewhere else.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from stock_pipelines.market import SEOUL

US = 1_000_000


class SimClock:
    def __init__(self, start: datetime, speed: float = 1.0, pinned: bool = False, wall=time.time) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start")
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor_sim_us = int(start.timestamp() * US)
        self._anchor_wall = wall()
        self._speed = float(speed)
        self._pinned = pinned

    def now_us(self) -> int:
        with self._lock:
            if self._pinned:
                return self._anchor_sim_us
            return self._anchor_sim_us + int((self._wall() - self._anchor_wall) * self._speed * US)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_us() / US, SEOUL)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def pinned(self) -> bool:
        return self._pinned

    def set(self, at: datetime | None = None, speed: float | None = None, pinned: bool | None = None) -> None:
        """Move to `at` (default: stay), change speed, pin or release; all at once."""
        if at is not None and at.tzinfo is None:
            raise ValueError("give the clock a timezone-aware time (e.g. 2026-11-20T10:00:00+09:00)")
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        current = self.now_us()
        with self._lock:
            self._anchor_sim_us = int(at.timestamp() * US) if at is not None else current
            self._anchor_wall = self._wall()
            if speed is not None:
                self._speed = float(speed)
            if pinned is not None:
                self._pinned = pinned

    def state(self) -> dict[str, object]:
        return {"now": self.now().isoformat(), "speed": self._speed, "pinned": self._pinned}
