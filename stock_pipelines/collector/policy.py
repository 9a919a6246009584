"""The collector's decisions as pure logic over an injected time: when to be connected, when the
feed counts as stalled, and which source to use. The async runner only asks these objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from stock_pipelines.market import SEOUL, CalendarRangeError, KrxCalendar, Phase, Session


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class MarketWindow:
    """Connected from `prime` before the open (08:55) to `linger` after the close; idle otherwise.

    Outside the window the collector only heartbeats: no connection attempts, so no reconnect
    storms at night, on weekends or holidays.
    """

    def __init__(self, calendar: KrxCalendar, prime: timedelta, linger: timedelta) -> None:
        self.calendar, self.prime, self.linger = calendar, prime, linger

    def session_for(self, now_s: float) -> Session | None:
        local = _dt(now_s).astimezone(SEOUL)
        for day in (local.date(), local.date() - timedelta(days=1)):
            session = self._session(day)
            if session is not None and session.open - self.prime <= local < session.close + self.linger:
                return session
        return None

    def _session(self, day: date) -> Session | None:
        try:
            return self.calendar.session(day)
        except CalendarRangeError:  # outside the calendar's range: no session known, stay idle
            return None

    def should_connect(self, now_s: float) -> bool:
        return self.session_for(now_s) is not None

    def continuous(self, now_s: float) -> bool:
        try:
            return self.calendar.phase(_dt(now_s)) is Phase.CONTINUOUS
        except CalendarRangeError:
            return False

    def continuous_seconds(self, start_s: float, end_s: float) -> float:
        """Seconds of continuous trading (open to closing-auction start) within [start, end)."""
        if end_s <= start_s:
            return 0.0
        try:
            windows = self.calendar.trading_windows(_dt(start_s), _dt(end_s))
        except CalendarRangeError:
            return 0.0
        total = 0.0
        for begin, finish in windows:
            session = self._session(begin.astimezone(SEOUL).date())
            if session is not None:
                finish = min(finish, session.closing_auction_start)
            total += max(0.0, (finish - begin).total_seconds())
        return total

    def next_connect(self, now_s: float) -> datetime | None:
        local = _dt(now_s).astimezone(SEOUL)
        day: date | None = local.date()
        for _ in range(15):
            if day is None:
                return None
            session = self._session(day)
            if session is not None and local < session.close + self.linger:
                return max(local, session.open - self.prime)
            try:
                day = self.calendar.next_trading_day(day)
            except CalendarRangeError:
                return None
        return None


class StallWatchdog:
    """Stalled when, in continuous trading, nothing came for `limit` exchange seconds.

    Silence is counted only over continuous-trading time since the later of the last data and the
    last (re)connect, so the pre-open and the closing auction (no continuous trades) never trip it.
    """

    def __init__(self, window: MarketWindow, limit_s: float) -> None:
        self.window, self.limit_s = window, limit_s
        self._since: float | None = None
        self._quiet_s = 0.0
        self._last_check: float | None = None

    def reset(self, now_s: float) -> None:
        """Data arrived, or the feed was (re)connected."""
        self._since, self._quiet_s, self._last_check = now_s, 0.0, now_s

    def check(self, now_s: float) -> float | None:
        """The silent seconds if stalled now (then the watch restarts), else None."""
        if self._last_check is None:
            self.reset(now_s)
            return None
        self._quiet_s += self.window.continuous_seconds(self._last_check, now_s)
        self._last_check = max(self._last_check, now_s)
        if self._quiet_s >= self.limit_s:
            silent = self._quiet_s
            self.reset(now_s)
            return silent
        return None


@dataclass(frozen=True)
class Switch:
    at: float  # clock time (epoch s)
    from_source: str
    to_source: str
    reason: str


@dataclass
class SourceSelector:
    """Primary until `failover_after` consecutive failures, then the secondary; back to the primary
    when a probe of it succeeds. Every switch is recorded. A failure is a connection that could not
    be opened or subscribed, that closed unexpectedly, or a stall; a success (data received) resets
    the count."""

    sources: list[str]
    failover_after: int = 3
    active: int = 0
    failures: int = 0
    switches: list[Switch] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.sources[self.active]

    @property
    def on_secondary(self) -> bool:
        return self.active > 0

    def success(self) -> None:
        self.failures = 0

    def failure(self, now_s: float, reason: str) -> Switch | None:
        self.failures += 1
        if self.active == 0 and len(self.sources) > 1 and self.failures >= self.failover_after:
            return self._switch(1, now_s, f"failover after {self.failures} failures of the primary: {reason}")
        return None

    def probe_succeeded(self, now_s: float) -> Switch | None:
        if not self.on_secondary:
            return None
        return self._switch(0, now_s, "failback: the primary answered a probe")

    def _switch(self, to: int, now_s: float, reason: str) -> Switch:
        switch = Switch(now_s, self.sources[self.active], self.sources[to], reason)
        self.active, self.failures = to, 0
        self.switches.append(switch)
        return switch
