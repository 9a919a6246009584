"""Day windows and the time between them, and a clock that runs at one speed in the windows and
another between them: the timeline the simulated exchange and the project clock share.

A session's *day window* is [open - DAY_MARGIN, close + DAY_MARGIN]; nights, weekends and
holidays lie between two windows. Times are integer microseconds since the epoch, so the
exchange's clock and the project clock land on the same microsecond for the same wall time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from stock_pipelines.market.calendar import SEOUL, CalendarRangeError, krx_calendar

US = 1_000_000
DAY_MARGIN = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """Epoch microseconds of a timezone-aware instant (integer arithmetic: no float rounding)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: epoch microseconds need a timezone-aware time")
    return (at - _EPOCH) // _ONE_US


def from_us(at_us: int) -> datetime:
    """The UTC instant of epoch microseconds `at_us` (the inverse of `to_us`)."""
    return _EPOCH + timedelta(microseconds=at_us)


def check_speed(speed: float | str) -> float:
    """A clock speed (simulated seconds per wall second) as a float: a finite positive number."""
    value = float(speed)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"speed must be a positive number, not {speed}")
    return value


def segment_at(at_us: int) -> tuple[int | None, bool]:
    """(end of the segment holding `at_us` in µs, whether it is a day window); end None: no end
    (past the calendar's range the clock simply runs on)."""
    calendar = krx_calendar()
    local = datetime.fromtimestamp(at_us / US, SEOUL)
    try:
        session = calendar.session(local.date())
        if session is not None and at_us < to_us(session.close + DAY_MARGIN):
            if at_us >= to_us(session.open - DAY_MARGIN):
                return to_us(session.close + DAY_MARGIN), True
            return to_us(session.open - DAY_MARGIN), False
        following = calendar.next_trading_day(local.date())
    except CalendarRangeError:
        return None, True
    if following is None:
        return None, True
    return to_us(calendar.session(following).open - DAY_MARGIN), False


def advance_us(start_us: int, wall_s: float, day_speed: float, night_speed: float) -> int:
    """Where a clock started at `start_us` is after `wall_s` wall seconds, running at `day_speed`
    in day windows and `night_speed` between them (segment by segment, so a boundary is met
    at the same instant whatever the speeds)."""
    at_us, left_s = start_us, wall_s
    if day_speed == night_speed:
        return at_us + int(left_s * day_speed * US)
    while True:
        end_us, is_day = segment_at(at_us)
        rate = day_speed if is_day else night_speed
        reach_us = at_us + int(left_s * rate * US)
        if end_us is None or reach_us < end_us:
            return reach_us
        left_s -= (end_us - at_us) / rate / US
        at_us = end_us
