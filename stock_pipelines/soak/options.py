"""What a soak runs: its days, its exchange, its fleet, its seed (the full run and `--quick`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

from stock_pipelines.market import SEOUL, krx_calendar

# Wednesday 2026-11-18 .. Tuesday 2026-11-24: the CSAT day (Thu 19th, 10:00-16:30) and a weekend
FULL_START = date(2026, 11, 18)
# Thursday-Friday: the CSAT day and a normal one, one night between them
QUICK_START = date(2026, 11, 19)
# what a day's certification needs: the end-of-day run. The pre-flight, freshness and retention
# schedules run in the full soak; a run's process start alone is ~8 s of CPU (it imports the
# definitions), which the quick mode's 3 minutes on two shared cores cannot spare.
QUICK_SCHEDULES = ("end_of_day_schedule",)
CLOCK_START = time(8, 40)   # the exchange is released here on the first day (collectors connect at 08:55)


@dataclass(frozen=True)
class SoakOptions:
    days: int = 5
    start: date = FULL_START
    quick: bool = False
    seed: int = 7
    speed: float = 600.0             # in the day windows (open - 10 min .. close + 10 min)
    night_speed: float = 2400.0      # between them: a night is 24 wall seconds, a weekend 98
    symbols: int = 12
    activity: float = 0.5
    run_dir: Path | None = None
    # the full week keeps 3 trading days of archive, so its fourth day's 19:00 retention run deletes
    # the first (certified) day while the soak watches; None: the project's default window
    retention_trading_days: int | None = 3
    # the schedules ticked on the exchange's clock (None: all of them)
    schedules: tuple[str, ...] | None = None
    run_slots: int | None = None   # concurrent Dagster runs (None: the project's 2, recoveries 1)
    startup_budget_s: float = 60.0    # wall seconds from starting the webserver and daemon to the clock's release
    drain_timeout_s: float = 1500.0   # wall seconds to wait for the last runs after the last day

    @classmethod
    def quick_run(cls, **overrides) -> SoakOptions:
        base = cls(days=2, start=QUICK_START, quick=True, speed=600.0, night_speed=6000.0, symbols=6,
                   activity=0.3, drain_timeout_s=900.0, retention_trading_days=None,
                   schedules=QUICK_SCHEDULES, run_slots=3,
                   startup_budget_s=50.0)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def full_run(cls, **overrides) -> SoakOptions:
        return replace(cls(), **{k: v for k, v in overrides.items() if v is not None})


def trading_days(start: date, count: int) -> list[date]:
    """`count` consecutive KRX trading days from `start` (itself when it is one)."""
    calendar = krx_calendar()
    day = start if calendar.is_trading_day(start) else calendar.next_trading_day(start)
    days = []
    while len(days) < count:
        if day is None:
            raise ValueError(f"the KRX calendar ends before {count} trading days from {start}")
        days.append(day)
        day = calendar.next_trading_day(day)
    return days


def clock_start(first_day: date) -> datetime:
    return datetime.combine(first_day, CLOCK_START, tzinfo=SEOUL)


def end_of_soak(last_day: date) -> datetime:
    """The last day's close + 1 h 10: its end-of-day run and both freshness ticks (16:30, 17:30;
    the CSAT day's close is 16:30) have been due."""
    session = krx_calendar().session(last_day)
    return max(session.close + timedelta(hours=1, minutes=10),
               datetime.combine(last_day, time(17, 31), tzinfo=SEOUL))


def collectors_stop(last_day: date) -> datetime:
    """The fleet stops 15 minutes after the last close (its closing prints are archived by then)."""
    return krx_calendar().session(last_day).close + timedelta(minutes=15)
