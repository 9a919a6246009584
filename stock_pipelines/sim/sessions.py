"""The simulator's view of the calendar: the project's KRX calendar and a clear error for closed days."""

from __future__ import annotations

from datetime import date

from stock_pipelines.market import KrxCalendar, Session, krx_calendar


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
