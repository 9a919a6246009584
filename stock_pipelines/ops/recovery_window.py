"""A recovery window: a collector's lost trading time on one day, the unit the heartbeat sensor
queues and launches a recovery run for, and the run key that names it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta

from stock_pipelines.market import SEOUL, KrxCalendar
from stock_pipelines.recovery.plan import ceil_minute


@dataclass(frozen=True)
class Window:
    collector: str
    day: date
    start: datetime
    end: datetime
    attempt: int = 1
    not_before: datetime | None = None
    why: str = ""
    spans: tuple[tuple[datetime, datetime], ...] = ()  # the lost spans inside [start, end); () is all of it

    @property
    def pieces(self) -> tuple[tuple[datetime, datetime], ...]:
        """The lost spans: what a run launched for this window recovers."""
        return self.spans or ((self.start, self.end),)

    @property
    def run_key(self) -> str:
        start, end = self.start.astimezone(SEOUL), self.end.astimezone(SEOUL)
        return f"recovery:{self.collector}:{self.day:%Y%m%d}:{start:%H%M%S}-{end:%H%M%S}:a{self.attempt}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        for name in ("start", "end", "not_before"):
            value = data[name]
            data[name] = None if value is None else value.isoformat()
        data["spans"] = [[a.isoformat(), b.isoformat()] for a, b in self.spans]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Window:
        parse = lambda v: None if v is None else datetime.fromisoformat(v)
        return cls(
            collector=data["collector"],
            day=date.fromisoformat(data["day"]),
            start=parse(data["start"]),
            end=parse(data["end"]),
            attempt=int(data.get("attempt", 1)),
            not_before=parse(data.get("not_before")),
            why=data.get("why", ""),
            spans=tuple((parse(a), parse(b)) for a, b in data.get("spans", ())),
        )


def lost_windows(
    collector: str, start: datetime, end: datetime, why: str, calendar: KrxCalendar
) -> list[Window]:
    """[start, end) clipped to trading time, one window per trading day."""
    return [
        Window(
            collector,
            piece_start.astimezone(SEOUL).date(),
            piece_start.astimezone(SEOUL),
            piece_end.astimezone(SEOUL),
            why=why,
        )
        for piece_start, piece_end in calendar.trading_windows(start, end)
        if piece_end > piece_start
    ]


def through_the_minute(windows: list[Window], settle: timedelta) -> list[Window]:
    """Windows that end where a collector came back, inside a minute: that minute lost its trades
    up to the return (and until the feed is subscribed again), and the broker's bar for it is final
    only once the minute has closed. Each such window runs to the end of its minute and waits for
    it to close, so the run launched for it asks for a closed minute and gets its whole bar."""
    out = []
    for window in windows:
        end = ceil_minute(window.end)
        out.append(replace(window, end=end, not_before=end + settle))
    return out
