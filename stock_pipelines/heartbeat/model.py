"""Heartbeats, lifecycle events and up-intervals: the plain data the store and the gap calculator share.

History is kept as *up-intervals*, not as every beat: a beat less than `merge_tolerance` (2
heartbeat intervals) after the end of the current interval extends it, a later beat opens a new
one. A day of beats every 5 s is then a handful of short strings instead of 17,280 entries, and
every hole longer than the tolerance survives, so any downtime threshold of at least 2 intervals
(the default is 3) can still be applied after the fact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from stock_pipelines.archive.layout import check_collector_id
from stock_pipelines.market.segments import from_us, to_us
from stock_pipelines.ops import clock

Clock = Callable[[], datetime]
DEFAULT_INTERVAL_S = 5.0
MERGE_TOLERANCE_INTERVALS = 2.0
# An UP event's detail: the earliest instant (epoch µs) the new process's beats are stamped with.
# Beats may be back-dated before the UP itself; history before this instant is earlier processes'.
BEATS_FROM_KEY = "beats_from_us"


def utc_now() -> datetime:
    """The project clock (`ops.clock`, fake-able) in UTC."""
    return clock.now().astimezone(UTC)


class Status(enum.StrEnum):
    """What a collector says about itself in each beat."""

    STARTING = "starting"
    OK = "ok"
    STALLED = "stalled"  # connected, but its feed went quiet
    STOPPING = "stopping"


class LifecycleEvent(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    STALLED = "STALLED"


@dataclass(frozen=True)
class Heartbeat:
    collector: str
    host: str
    pid: int
    started_at: datetime
    at: datetime  # when the beat was sent
    symbols: tuple[str, ...] = ()
    last_trade_at: datetime | None = None
    status: Status = Status.OK
    interval_s: float = DEFAULT_INTERVAL_S

    def __post_init__(self) -> None:
        check_collector_id(self.collector)
        to_us(self.started_at), to_us(self.at)
        if self.last_trade_at is not None:
            to_us(self.last_trade_at)
        if self.interval_s <= 0:
            raise ValueError(f"heartbeat interval must be positive, not {self.interval_s}")
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "symbols", tuple(self.symbols))

    @property
    def merge_tolerance(self) -> timedelta:
        return timedelta(seconds=self.interval_s * MERGE_TOLERANCE_INTERVALS)

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for a Redis hash."""
        return {
            "collector": self.collector,
            "host": self.host,
            "pid": str(self.pid),
            "started_at_us": str(to_us(self.started_at)),
            "at_us": str(to_us(self.at)),
            "symbols": ",".join(self.symbols),
            "last_trade_at_us": "" if self.last_trade_at is None else str(to_us(self.last_trade_at)),
            "status": self.status.value,
            "interval_s": repr(self.interval_s),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Heartbeat:
        return cls(
            collector=fields["collector"],
            host=fields["host"],
            pid=int(fields["pid"]),
            started_at=from_us(int(fields["started_at_us"])),
            at=from_us(int(fields["at_us"])),
            symbols=tuple(s for s in fields["symbols"].split(",") if s),
            last_trade_at=from_us(int(fields["last_trade_at_us"])) if fields["last_trade_at_us"] else None,
            status=Status(fields["status"]),
            interval_s=float(fields["interval_s"]),
        )


@dataclass(frozen=True)
class EventRecord:
    id: str  # the stream entry id: pass the last one back as the reader's cursor
    event: LifecycleEvent
    collector: str
    at: datetime
    detail: dict = field(default_factory=dict)


class UpInterval(NamedTuple):
    """A stretch in which a collector beat with no hole longer than the merge tolerance."""

    start: datetime
    end: datetime


class IntervalBuilder:
    """Folds beats (and DOWN events) into up-intervals: the same rule the Redis script applies."""

    def __init__(self) -> None:
        self._intervals: list[list[int]] = []  # [start_us, end_us, closed]

    def beat(self, at_us: int, tolerance_us: int) -> None:
        if self._intervals:
            start, end, closed = self._intervals[-1]
            if not closed and end <= at_us <= end + tolerance_us:
                self._intervals[-1][1] = at_us
                return
            if start <= at_us <= end:
                return  # a repeated or reordered beat inside what we know already
        self._intervals.append([at_us, at_us, 0])

    def close(self, at_us: int, tolerance_us: int) -> None:
        """A DOWN event: a last beat, after which the next beat opens a new interval."""
        self.beat(at_us, tolerance_us)
        self._intervals[-1][2] = 1

    def intervals(self) -> list[UpInterval]:
        return merge_intervals(UpInterval(from_us(s), from_us(e)) for s, e, _ in self._intervals)


def merge_intervals(intervals: Iterable[UpInterval]) -> list[UpInterval]:
    """Sorted, with overlapping intervals merged (touching ones stay apart: a hole of 0 is no hole)."""
    merged: list[UpInterval] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1].end:
            merged[-1] = UpInterval(merged[-1].start, max(merged[-1].end, end))
        else:
            merged.append(UpInterval(start, end))
    return merged


def intervals_from_beats(
    beats: Iterable[datetime], interval_s: float = DEFAULT_INTERVAL_S
) -> list[UpInterval]:
    """Up-intervals from raw beat times (any order)."""
    builder = IntervalBuilder()
    tolerance_us = int(interval_s * MERGE_TOLERANCE_INTERVALS * 1_000_000)
    for at_us in sorted(to_us(b) for b in beats):
        builder.beat(at_us, tolerance_us)
    return builder.intervals()
