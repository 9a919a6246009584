"""A gap: a stretch of trading time in which trades were (probably) not archived, and why."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from stock_pipelines.market import SEOUL, KrxCalendar, krx_calendar


class GapKind(enum.StrEnum):
    DOWNTIME = "downtime"  # no heartbeat for longer than the threshold
    SILENCE = "silence"  # heartbeats, but the collector's whole universe traded nothing
    SEQUENCE = "sequence"  # a symbol's cumulative volume jumped: trades missed while "healthy"


@dataclass(frozen=True)
class Gap:
    """[start, end) in Asia/Seoul, inside one session's trading time.

    A sequence gap is the window (previous trade's ts, this trade's ts] and may have zero length
    (two prints in the same microsecond with trades missed between them): it still names the
    minute whose bars must be recovered.
    """

    kind: GapKind
    collector: str
    start: datetime
    end: datetime
    symbols: tuple[str, ...]
    reason: str

    def __post_init__(self) -> None:
        for instant in (self.start, self.end):
            if instant.tzinfo is None or instant.utcoffset() is None:
                raise ValueError(f"gap times must be timezone-aware, not {instant.isoformat()}")
        if self.end < self.start:
            raise ValueError(f"gap ends before it starts: {self.start.isoformat()} > {self.end.isoformat()}")
        object.__setattr__(self, "kind", GapKind(self.kind))
        object.__setattr__(self, "start", self.start.astimezone(SEOUL))
        object.__setattr__(self, "end", self.end.astimezone(SEOUL))
        object.__setattr__(self, "symbols", tuple(self.symbols))

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def minutes(self) -> float:
        return self.duration / timedelta(minutes=1)


def clipped(
    kind: GapKind,
    collector: str,
    start: datetime,
    end: datetime,
    symbols: Iterable[str],
    reason: str,
    calendar: KrxCalendar | None = None,
) -> list[Gap]:
    """[start, end) clipped to trading time: nothing outside a session, one gap per session touched."""
    symbols = tuple(symbols)
    return [
        Gap(kind, collector, piece_start, piece_end, symbols, reason)
        for piece_start, piece_end in (calendar or krx_calendar()).trading_windows(start, end)
    ]
