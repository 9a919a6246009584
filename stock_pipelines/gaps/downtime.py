"""Downtime gaps: stretches with no heartbeat for longer than a threshold (default 3 intervals).

Input is a collector's up-intervals (from `HeartbeatStore.up_intervals`, the archive's system
stream, or `intervals_from_beats`). A hole between them counts when the *trading time* it
covers exceeds the threshold: a collector that stops at 15:29:58 and starts at 08:55 lost 2
seconds, not a night; one down from 15:00 to 09:30 the next trading day lost 30 + 30 minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from stock_pipelines.gaps.model import Gap, GapKind, clipped
from stock_pipelines.heartbeat.model import DEFAULT_INTERVAL_S, UpInterval, merge_intervals
from stock_pipelines.market import SEOUL, KrxCalendar, krx_calendar

DEFAULT_THRESHOLD_INTERVALS = 3

Window = date | tuple[datetime, datetime]


def resolve_window(
    window: Window, now: datetime | None, calendar: KrxCalendar
) -> tuple[datetime, datetime] | None:
    """A trading day means its session [open, close); an explicit window is taken as given.

    `now` cuts the end: what has not happened yet is not a gap.
    """
    if isinstance(window, tuple):
        start, end = window
    else:
        session = calendar.session(window)
        if session is None:
            return None
        start, end = session.open, session.close
    if now is not None:
        end = min(end, now)
    return (start, end) if start < end else None


def downtime_gaps(
    up_intervals: Iterable[UpInterval],
    window: Window,
    *,
    collector: str,
    interval: timedelta = timedelta(seconds=DEFAULT_INTERVAL_S),
    threshold: timedelta | None = None,
    symbols: Iterable[str] = (),
    now: datetime | None = None,
    calendar: KrxCalendar | None = None,
) -> list[Gap]:
    """Holes in `up_intervals` inside `window` whose trading time exceeds `threshold`.

    `threshold` defaults to 3 x `interval`. It must be at least the store's merge tolerance (2
    intervals): shorter holes were merged away when the history was written.
    """
    calendar = calendar or krx_calendar()
    threshold = threshold if threshold is not None else DEFAULT_THRESHOLD_INTERVALS * interval
    bounds = resolve_window(window, now, calendar)
    if bounds is None:
        return []
    start, end = bounds
    symbols = tuple(symbols)

    holes: list[tuple[datetime, datetime]] = []
    cursor = start
    for up in merge_intervals(up_intervals):
        if up.end <= cursor:
            continue
        if up.start >= end:
            break
        if up.start > cursor:
            holes.append((cursor, up.start))
        cursor = max(cursor, up.end)
    if cursor < end:
        holes.append((cursor, end))

    gaps: list[Gap] = []
    for hole_start, hole_end in holes:
        lost = calendar.trading_time(hole_start, hole_end)
        if lost <= threshold:
            continue
        reason = (
            f"no heartbeat from {hole_start.astimezone(SEOUL):%Y-%m-%d %H:%M:%S} "
            f"to {hole_end.astimezone(SEOUL):%Y-%m-%d %H:%M:%S} "
            f"(Asia/Seoul; {lost.total_seconds() / 60:.1f} trading minutes, threshold "
            f"{threshold.total_seconds():g} s)"
        )
        gaps.extend(clipped(GapKind.DOWNTIME, collector, hole_start, hole_end, symbols, reason, calendar))
    return gaps
