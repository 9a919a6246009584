"""The simulator's view of the calendar: the project's KRX calendar and a clear error for closed days."""

from __future__ import annotations

import functools
from datetime import date

from stock_pipelines.market import SUPPORTED_FIRST_DAY, SUPPORTED_LAST_DAY, KrxCalendar, Session, krx_calendar


class NotATradingDay(ValueError):
    """The simulator was asked for a day KRX does not trade."""


def sim_calendar() -> KrxCalendar:
    return krx_calendar()


def trading_session(day: date) -> Session:
    """The day's session, or NotATradingDay naming the date and why."""
    info = sim_calendar().day(day)
    if info.session is None:
        raise NotATradingDay(f"{day.isoformat()} is not a KRX trading day ({info.closed_reason})")
    return info.session


@functools.lru_cache(maxsize=1)
def _trading_day_numbers() -> dict[date, int]:
    calendar = sim_calendar()
    days = calendar.trading_days(SUPPORTED_FIRST_DAY, SUPPORTED_LAST_DAY)
    return {day: number for number, day in enumerate(days)}


def trading_day_number(day: date) -> int:
    """0 for the calendar's first trading day, +1 a trading day (NotATradingDay for a closed day)."""
    number = _trading_day_numbers().get(day)
    if number is None:
        trading_session(day)  # raises with the reason (or CalendarRangeError out of range)
        raise NotATradingDay(f"{day.isoformat()} is not a KRX trading day")
    return number


def trading_days_count() -> int:
    return len(_trading_day_numbers())
