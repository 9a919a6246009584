"""The KRX market calendar (no Dagster imports: the Dagster layer builds on this)."""

from stock_pipelines.market.calendar import (
    SEOUL,
    SUPPORTED_FIRST_DAY,
    SUPPORTED_LAST_DAY,
    CalendarHorizon,
    CalendarRangeError,
    Day,
    KrxCalendar,
    Phase,
    Session,
    krx_calendar,
)

__all__ = [
    "SEOUL",
    "SUPPORTED_FIRST_DAY",
    "SUPPORTED_LAST_DAY",
    "CalendarHorizon",
    "CalendarRangeError",
    "Day",
    "KrxCalendar",
    "Phase",
    "Session",
    "krx_calendar",
]
