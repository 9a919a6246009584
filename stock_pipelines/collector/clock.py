"""Where the collector's time comes from: the machine, or the simulated exchange's clock.

Everything time-dependent (receive time `rx`, archive file hours, heartbeat times, the stall
watchdog, market awareness) reads one `Clock`. Against an accelerated `sim exchange` the
collector must live on the exchange's time, not the machine's: `ExchangeClock` reads
`GET /admin/clock` (now, speeds, pinned), extrapolates between reads with its day and night
speeds through the day windows (`market.segments`, as the exchange runs), and re-reads every `resync_s` wall seconds from a daemon thread. Network waits (backoff, probes,
heartbeat spacing) stay in wall seconds; `rate` converts (exchange seconds per wall second).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx

from stock_pipelines.market.segments import US, advance_us, segment_at


class SystemClock:
    rate = 1.0
    running_rate = 1.0

    def now(self) -> float:
        return time.time()

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def close(self) -> None:
        pass


class ExchangeClock(SystemClock):
    def __init__(self, base_url: str, resync_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.url = base_url.rstrip("/") + "/admin/clock"
        self.resync_s = resync_s
        self._http = httpx.Client(timeout=timeout_s)
        self._lock = threading.Lock()
        self._anchor_exchange = 0.0
        self._anchor_wall = 0.0
        self._speed = 1.0
        self._day_speed = self._night_speed = 1.0
        self._pinned = False
        self._last = 0.0
        self.sync_failures = 0
        self.sync()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-clock", daemon=True)
        self._thread.start()

    @property
    def rate(self) -> float:  # type: ignore[override]
        return 0.0 if self._pinned else self._speed

    @property
    def running_rate(self) -> float:  # type: ignore[override]
        """The speed of the segment the clock is in, pinned or not: what the next wall second is
        worth in exchange time once the clock runs. A heartbeat stamped while the exchange is
        pinned says how long until the next one from this, not from the pinned rate of 0."""
        with self._lock:
            if self._day_speed == self._night_speed:
                return self._speed
            _, in_day = segment_at(int(self._anchor_exchange * US))
            return self._day_speed if in_day else self._night_speed

    def sync(self) -> None:
        sent = time.time()
        reply = self._http.get(self.url)
        received = time.time()
        reply.raise_for_status()
        state = reply.json()
        with self._lock:
            self._anchor_exchange = datetime.fromisoformat(state["now"]).timestamp()
            self._anchor_wall = (sent + received) / 2  # the reply was read about half a round trip ago
            self._speed = float(state["speed"])
            self._day_speed = float(state.get("day_speed", self._speed))
            self._night_speed = float(state.get("night_speed", self._day_speed))
            self._pinned = bool(state["pinned"])

    def now(self) -> float:
        with self._lock:
            if self._pinned:
                now = self._anchor_exchange
            elif self._day_speed == self._night_speed:
                now = self._anchor_exchange + (time.time() - self._anchor_wall) * self._speed
            else:   # a faster night: at a morning's boundary, the day speed at once
                now = advance_us(int(self._anchor_exchange * US), time.time() - self._anchor_wall,
                                 self._day_speed, self._night_speed) / US
            # A re-read a few ms off must not make rx or file hours go backwards; a deliberate
            # move of the exchange clock (more than two wall seconds back) is followed.
            if self._last - 2.0 * max(self._speed, 1.0) < now < self._last:
                return self._last
            self._last = now
            return now

    def _run(self) -> None:
        while not self._stop.wait(self.resync_s):
            try:
                self.sync()
            except (httpx.HTTPError, ValueError, KeyError):
                self.sync_failures += 1  # keep extrapolating from the last good reading

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._http.close()
