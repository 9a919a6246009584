"""The KRX trading calendar: trading days, session windows, phases and trading time.

Built on `exchange_calendars` (XKRX), which knows the regular and most ad hoc holidays and
the 10:00 open of each year's first trading day, with a reviewed override table
(`krx_overrides.csv`, each row with its source) for what XKRX misses: the CSAT-day sessions
(10:00-16:30) after 2020 and closures such as the 2026 local elections. Rows for dates not yet
announced are marked provisional; `CalendarHorizon` tells the operator (calendar command, status,
pre-flight) how many days of calendar are left, with a warning below 60.

Session facts (KRX market operation rules, see docs/architecture.md "Domain facts"):
- regular session 09:00-15:30 Asia/Seoul, shifted on special days;
- the last 10 minutes before the close are the closing call auction (one print at the close,
  no continuous trades);
- the 30 minutes before the open are the pre-open call auction (orders, no trades).

Every datetime this module returns is timezone-aware in Asia/Seoul; every datetime it takes
must be timezone-aware (a naive datetime is refused: a silent guess at its zone is how a
9-hour gap appears).
"""

from __future__ import annotations

import csv
import enum
import functools
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
SUPPORTED_FIRST_DAY = date(2020, 1, 1)
SUPPORTED_LAST_DAY = date(2028, 12, 31)
OVERRIDES_PATH = Path(__file__).with_name("krx_overrides.csv")

PRE_OPEN_LENGTH = timedelta(minutes=30)
CLOSING_AUCTION_LENGTH = timedelta(minutes=10)
ONE_MINUTE = timedelta(minutes=1)
REGULAR_OPEN = time(9, 0)
REGULAR_CLOSE = time(15, 30)


HORIZON_WARN_DAYS = 60  # below this many days of supported calendar left, the operator is warned


@dataclass(frozen=True)
class CalendarHorizon:
    """How much reviewed calendar is left after `today`: extending it is a person's job (next
    year's special sessions reviewed into krx_overrides.csv), so it is announced well ahead."""

    today: date
    last_day: date = SUPPORTED_LAST_DAY

    @property
    def days_left(self) -> int:
        return (self.last_day - self.today).days

    @property
    def running_out(self) -> bool:
        return self.days_left < HORIZON_WARN_DAYS

    def describe(self) -> str:
        if self.days_left < 0:
            return (f"KRX calendar ended on {self.last_day.isoformat()}, {-self.days_left} days ago: "
                    "extend SUPPORTED_LAST_DAY and review the new year into krx_overrides.csv")
        text = f"KRX calendar supported through {self.last_day.isoformat()}: {self.days_left} days left"
        if self.running_out:
            text += (f", below {HORIZON_WARN_DAYS}: extend SUPPORTED_LAST_DAY and review the next "
                     "year's special sessions into krx_overrides.csv")
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "supported_until": self.last_day.isoformat(),
            "days_left": self.days_left,
            "warning": self.describe() if self.running_out else None,
        }


class CalendarRangeError(ValueError):
    """A date or instant outside the range the calendar has reviewed data for."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is outside the supported range "
            f"{SUPPORTED_FIRST_DAY.isoformat()}..{SUPPORTED_LAST_DAY.isoformat()}"
        )


class Phase(enum.StrEnum):
    PRE_OPEN = "pre_open"
    CONTINUOUS = "continuous"
    CLOSING_AUCTION = "closing_auction"
    CLOSED = "closed"


@dataclass(frozen=True)
class Session:
    """One trading day's regular session, [open, close) in Asia/Seoul."""

    day: date
    open: datetime
    close: datetime
    special_reason: str | None = None

    @property
    def pre_open_start(self) -> datetime:
        return self.open - PRE_OPEN_LENGTH

    @property
    def closing_auction_start(self) -> datetime:
        return self.close - CLOSING_AUCTION_LENGTH

    @property
    def is_special(self) -> bool:
        return self.special_reason is not None

    def minute_bar_starts(self) -> list[datetime]:
        """Start times of the session's one-minute bars.

        Every minute of continuous trading, [open, closing auction start), plus one bar at the
        close for the closing-auction print: 09:00..15:19 and 15:30 on a regular day (381 bars).
        """
        count = int((self.closing_auction_start - self.open) / ONE_MINUTE)
        return [self.open + i * ONE_MINUTE for i in range(count)] + [self.close]


@dataclass(frozen=True)
class Day:
    """What the calendar says about one calendar date."""

    day: date
    session: Session | None
    closed_reason: str | None

    @property
    def is_trading_day(self) -> bool:
        return self.session is not None

    @property
    def reason(self) -> str | None:
        """Why the day is closed, or why its session is special; None on a regular day."""
        if self.session is None:
            return self.closed_reason
        return self.session.special_reason


@dataclass(frozen=True)
class Override:
    day: date
    kind: str  # "closed" or "special_session"
    open: time | None
    close: time | None
    reason: str
    source: str
    status: str  # "confirmed" or "provisional"


def load_overrides(path: Path = OVERRIDES_PATH) -> list[Override]:
    """Read and validate the override table; a malformed row is an error, never skipped."""
    overrides: list[Override] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{path.name} line {line_number}"
            try:
                day = date.fromisoformat(row["date"])
                kind = row["kind"]
                if kind not in ("closed", "special_session"):
                    raise ValueError(f"kind must be closed or special_session, not {kind!r}")
                open_, close = (
                    (time.fromisoformat(row["open"]), time.fromisoformat(row["close"]))
                    if kind == "special_session"
                    else (None, None)
                )
                if open_ is not None and close is not None and open_ >= close:
                    raise ValueError("open must be before close")
                if not row["reason"].strip() or not row["source"].strip():
                    raise ValueError("every override needs a reason and a source")
                if row["status"] not in ("confirmed", "provisional"):
                    raise ValueError(f"status must be confirmed or provisional, not {row['status']!r}")
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from error
            overrides.append(
                Override(day, kind, open_, close, row["reason"], row["source"], row["status"])
            )
    return overrides


class KrxCalendar:
    """Trading days and sessions for SUPPORTED_FIRST_DAY..SUPPORTED_LAST_DAY."""

    def __init__(self, overrides: list[Override] | None = None) -> None:
        self.overrides = {o.day: o for o in (overrides if overrides is not None else load_overrides())}
        self._days = self._build_days()
        self._sessions = [d.session for d in self._days.values() if d.session is not None]
        self._session_days = [s.day for s in self._sessions]
        self._session_opens = [s.open for s in self._sessions]
        self._session_closes = [s.close for s in self._sessions]

    # -- construction --------------------------------------------------------------------

    def _build_days(self) -> dict[date, Day]:
        import exchange_calendars
        import pandas as pd

        first, last = pd.Timestamp(SUPPORTED_FIRST_DAY), pd.Timestamp(SUPPORTED_LAST_DAY)
        xkrx = exchange_calendars.get_calendar("XKRX", start=first, end=last)
        schedule = xkrx.schedule
        xkrx_sessions = {
            day: (open_, close)
            for day, open_, close in zip(
                schedule.index.date,
                schedule.open.dt.tz_convert(SEOUL).dt.to_pydatetime(),
                schedule.close.dt.tz_convert(SEOUL).dt.to_pydatetime(),
                strict=True,
            )
        }
        holiday_names = {
            ts.date(): str(name)
            for ts, name in xkrx.regular_holidays.holidays(first, last, return_name=True).items()
        }

        days: dict[date, Day] = {}
        for offset in range((SUPPORTED_LAST_DAY - SUPPORTED_FIRST_DAY).days + 1):
            day = SUPPORTED_FIRST_DAY + timedelta(days=offset)
            override = self.overrides.get(day)
            if override is not None:
                days[day] = self._day_from_override(override)
            elif day in xkrx_sessions:
                open_, close = xkrx_sessions[day]
                days[day] = Day(day, Session(day, open_, close, _special_reason(day, open_, close)), None)
            elif day.weekday() >= 5:
                days[day] = Day(day, None, "weekend")
            else:
                days[day] = Day(day, None, holiday_names.get(day, "KRX holiday (exchange_calendars XKRX)"))
        return days

    @staticmethod
    def _day_from_override(override: Override) -> Day:
        if override.kind == "closed":
            return Day(override.day, None, override.reason)
        assert override.open is not None and override.close is not None
        session = Session(
            override.day,
            datetime.combine(override.day, override.open, SEOUL),
            datetime.combine(override.day, override.close, SEOUL),
            override.reason,
        )
        return Day(override.day, session, None)

    # -- days ----------------------------------------------------------------------------

    def day(self, day: date) -> Day:
        try:
            return self._days[day]
        except KeyError:
            raise CalendarRangeError(day.isoformat()) from None

    def is_trading_day(self, day: date) -> bool:
        return self.day(day).is_trading_day

    def session(self, day: date) -> Session | None:
        return self.day(day).session

    def trading_days(self, first: date, last: date) -> list[date]:
        """Trading days in [first, last], both inclusive."""
        self.day(first), self.day(last)
        return [s.day for s in self._sessions if first <= s.day <= last]

    def closed_weekdays(self) -> list[date]:
        """Monday-to-Friday dates in the supported range with no session (holidays)."""
        return [d.day for d in self._days.values() if not d.is_trading_day and d.day.weekday() < 5]

    def previous_trading_day(self, day: date) -> date | None:
        index = bisect_left(self._session_days, day) - 1
        return self._sessions[index].day if index >= 0 else None

    def next_trading_day(self, day: date) -> date | None:
        index = bisect_right(self._session_days, day)
        return self._sessions[index].day if index < len(self._sessions) else None

    # -- instants and intervals ------------------------------------------------------------

    def phase(self, instant: datetime) -> Phase:
        local = _as_seoul(instant)
        session = self.session(local.date())
        if session is None or not (session.pre_open_start <= local < session.close):
            return Phase.CLOSED
        if local < session.open:
            return Phase.PRE_OPEN
        if local < session.closing_auction_start:
            return Phase.CONTINUOUS
        return Phase.CLOSING_AUCTION

    def sessions_between(self, start: datetime, end: datetime) -> Iterator[Session]:
        """Sessions that overlap [start, end)."""
        start, end = _as_seoul(start), _as_seoul(end)
        self.day(start.date()), self.day(end.date())
        first = bisect_right(self._session_closes, start)
        last = bisect_left(self._session_opens, end)
        return iter(self._sessions[first:last])

    def trading_windows(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """[start, end) clipped to trading time: one (from, to) piece per session it touches.

        Trading time is each session's [open, close), the closing auction included: a collector
        down from 15:00 to 09:30 the next trading day lost 30 + 30 minutes, not 18.5 hours.
        """
        start, end = _as_seoul(start), _as_seoul(end)
        if end <= start:
            return []
        return [
            (max(start, s.open), min(end, s.close))
            for s in self.sessions_between(start, end)
        ]

    def trading_time(self, start: datetime, end: datetime) -> timedelta:
        return sum((to - from_ for from_, to in self.trading_windows(start, end)), timedelta())


def _special_reason(day: date, open_: datetime, close: datetime) -> str | None:
    if (open_.timetz().replace(tzinfo=None), close.timetz().replace(tzinfo=None)) == (
        REGULAR_OPEN,
        REGULAR_CLOSE,
    ):
        return None
    if open_.time() == time(10, 0) and close.time() == REGULAR_CLOSE:
        return "first trading day of the year: opens 10:00 (exchange_calendars XKRX)"
    return f"special session {open_:%H:%M}-{close:%H:%M} (exchange_calendars XKRX)"


def _as_seoul(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: give a timezone (KRX runs on Asia/Seoul)")
    return instant.astimezone(SEOUL)


@functools.cache
def krx_calendar() -> KrxCalendar:
    """The process-wide calendar, from the on-disk cache when its inputs are unchanged."""
    from stock_pipelines.market.cache import cached, input_key

    key = input_key(Path(__file__), OVERRIDES_PATH, packages=("exchange_calendars",))
    return cached("krx_calendar", key, KrxCalendar, KrxCalendar)
