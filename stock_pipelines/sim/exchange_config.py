"""What a simulated exchange serves and how strictly: the first day, its universe, the clock, the limits."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from datetime import time as time_of_day

from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock as project_clock
from stock_pipelines.sim.sessions import sim_calendar


@dataclass(frozen=True)
class ExchangeConfig:
    day: date | None = None  # the clock's first day; default: today in Seoul if a trading day, else the previous one
    seed: int = 0
    symbols: int = 40
    activity: float = 1.0  # multiplies every symbol's trade rate
    speed: float = 1.0  # simulated seconds per wall second
    start: datetime | None = None  # clock start; default: the session open
    pinned: bool = False
    overnight: str = "run"  # between sessions: "run" at night_speed, or "skip" to the next session
    night_speed: float | None = None  # simulated seconds per wall second between sessions; None: speed
    day_cache: int = 8  # simulated days held in memory (least recently used evicted)
    credentials: dict[str, str] | None = None  # app key -> secret; None accepts any pair
    rate_limit: int = 20  # KIS calls a second per app key
    kiwoom_rate_limit: int = 5  # Kiwoom calls a second per app key
    token_ttl_s: float = 86_400.0
    token_interval_s: float = 60.0  # at most one token issue per app key in this many seconds
    max_subscriptions: int = 41  # per WebSocket session
    history_days: int = 5  # trading days of minute history Kiwoom serves before today
    ws_tick_s: float = 0.05  # how often the stream pushes what the clock has passed
    ping_interval_s: float = 10.0  # PINGPONG frames
    fault_seed: int = 0
    # shares added to each day's FHKST03010100 acml_vol: a broker whose day volume counts
    # after-hours trading, which the real-time feed (and so the archive) does not carry
    after_hours_volume: int = 0

    def resolved_day(self) -> date:
        if self.day is not None:
            return self.day
        today = project_clock.now().date()
        calendar = sim_calendar()
        return today if calendar.is_trading_day(today) else calendar.previous_trading_day(today)


def config_with(config: ExchangeConfig | None = None, **overrides: object) -> ExchangeConfig:
    return replace(config or ExchangeConfig(), **overrides)


def session_start(day: date, hhmm: str | None) -> datetime | None:
    """`--start HH:MM[:SS]` on the simulated day, Seoul time (ValueError when malformed)."""
    if hhmm is None:
        return None
    return datetime.combine(day, time_of_day.fromisoformat(hhmm), SEOUL)
