"""When a trading day's minute bars are due certified: one hour after its close (16:30 KST on a
regular day, 17:30 on a CSAT day, whose session closes at 16:30). At any instant the day that
must be certified is the latest trading day whose deadline has passed: before today's deadline
that is the previous trading day, on a holiday or a weekend the last one before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from stock_pipelines.market import SEOUL, KrxCalendar

CERTIFIED_WITHIN = timedelta(hours=1)  # the end of day runs 10 minutes after the close and takes minutes


@dataclass(frozen=True)
class Due:
    day: date
    deadline: datetime  # Asia/Seoul


def due_day(calendar: KrxCalendar, now: datetime) -> Due:
    """The latest trading day that must be certified at `now` (timezone-aware)."""
    day: date | None = now.astimezone(SEOUL).date()
    while day is not None:
        session = calendar.session(day)
        if session is not None and session.close + CERTIFIED_WITHIN <= now:
            return Due(day, session.close + CERTIFIED_WITHIN)
        day = calendar.previous_trading_day(day)
    raise ValueError(f"no KRX trading day due by {now.isoformat()} in the calendar's range")
