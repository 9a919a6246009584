"""All of one trading day's gaps, from every source of evidence the project has.

Per collector: up-time from Redis heartbeats (or, when Redis has nothing, the archive's system
stream), its universe (the symbols in its last heartbeat, else those it archived that day), and
its own trades. Downtime and silence gaps are per collector; sequence gaps are found on the
merged, de-duplicated raw_ticks, because a trade any collector saw is not missing. A day on
which no collector left any trace is one gap over the whole session for the expected universe.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import redis

from stock_pipelines.gaps.downtime import downtime_gaps
from stock_pipelines.gaps.model import Gap, GapKind, clipped
from stock_pipelines.gaps.sequence import sequence_gaps, tail_gaps
from stock_pipelines.archive.layout import SYSTEM, check_collector_id
from stock_pipelines.gaps.silence import silence_gaps
from stock_pipelines.heartbeat.archive_history import archive_collectors, up_intervals
from stock_pipelines.heartbeat.model import DEFAULT_INTERVAL_S, UpInterval
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import KrxCalendar, krx_calendar
from stock_pipelines.recovery.plan import subtract

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class CollectorDay:
    collector: str
    intervals: tuple[UpInterval, ...]
    history_source: str  # "redis" | "archive" | "none"
    symbols: tuple[str, ...]
    # its own beat interval (project seconds), from its latest heartbeat: a hole counts as downtime
    # past 3 of them, the rule the heartbeat sensor uses to call it down. On an accelerated clock
    # a beat every wall second is minutes apart, and the stretch since the last beat is no outage.
    beat_interval_s: float = DEFAULT_INTERVAL_S
    # the newest trade its latest heartbeat says it had archived: the archive read for the gaps
    # may not hold it yet (`gaps.silence`)
    last_trade_at: datetime | None = None


def collectors_of_day(
    day: date, ticks: pl.DataFrame, store: HeartbeatStore | None, archive_root: Path | None
) -> list[CollectorDay]:
    names: set[str] = set()
    if store is not None:
        try:
            names.update(store.collectors())
        except redis.RedisError:
            store = None  # the archive is the second source; the caller sees history_source
    if archive_root is not None and archive_root.exists():
        names.update(archive_collectors(archive_root, day))
    if ticks.height:
        names.update(ticks.get_column("collector").unique().to_list())
    result = []
    for name in sorted(names):
        intervals, source = up_intervals(store, archive_root, name, day)
        symbols: tuple[str, ...] = ()
        beat_interval_s = DEFAULT_INTERVAL_S
        last_trade_at = None
        if store is not None:
            latest = store.latest(name)
            if latest is not None and latest.at.date() >= day:
                symbols, beat_interval_s = latest.symbols, latest.interval_s
                # the beat vouches for its trades only alongside the history it belongs to
                last_trade_at = latest.last_trade_at if source == "redis" else None
        if not symbols and ticks.height:
            own = ticks.filter(pl.col("collector") == name).get_column("symbol").unique().sort()
            symbols = tuple(own.to_list())
        if source == "none" and not symbols:
            continue  # a stale heartbeat key from another day, with nothing to say about this one
        result.append(CollectorDay(name, tuple(intervals), source, symbols, beat_interval_s, last_trade_at))
    return result


LOSS_WINDOW, DISK_LOW, DISK_OK = "LOSS_WINDOW", "DISK_LOW", "DISK_OK"


def _detail_time(record: dict, name: str, default: datetime) -> datetime:
    value = (record.get("detail") or {}).get(name)
    return default if value is None else datetime.fromtimestamp(int(value) / 1e6, UTC)


def loss_window_gaps(
    archive_root: Path, collector: CollectorDay, day: date, calendar: KrxCalendar | None = None
) -> tuple[list[Gap], int]:
    """Losses the collector itself reported in its system stream, which no heartbeat rule sees.

    - LOSS_WINDOW: one WebSocket session reconnected or was handed over while the process kept
      beating (from its last trade to its first after the hole);
    - DISK_LOW .. DISK_OK: the writer refused lines below its free-space floor while the process
      kept beating (to the close when space never came back), from the oldest refused trade's
      execution time when the events carry it (trades reach the writer some time after they execute).
    Returns the gaps and the number of such lines that could not be read.
    """
    path = archive_root / check_collector_id(collector.collector) / SYSTEM / f"{day:%Y%m%d}.jsonl"
    if not path.exists():
        return [], 0
    calendar = calendar or krx_calendar()
    gaps: list[Gap] = []
    unreadable = 0
    disk_low_since: datetime | None = None
    with path.open("rb") as handle:
        for raw in handle:
            if not any(marker in raw for marker in (b"LOSS_WINDOW", b"DISK_LOW", b"DISK_OK")):
                continue
            try:
                record = json.loads(raw)
                event = record.get("event")
                at = datetime.fromtimestamp(int(record["at"]) / 1e6, UTC)
                if event == LOSS_WINDOW:
                    detail = record["detail"]
                    start = datetime.fromtimestamp(int(detail["from_us"]) / 1e6, UTC)
                    end = datetime.fromtimestamp(int(detail["to_us"]) / 1e6, UTC)
                    symbols = tuple(detail.get("symbol_list") or collector.symbols)
                    reason = f"collector reported a feed loss ({detail.get('reason', 'reconnect')})"
                    if end > start:
                        gaps += clipped(GapKind.DOWNTIME, collector.collector, start, end, symbols, reason, calendar)
                elif event == DISK_LOW and disk_low_since is None:
                    disk_low_since = min(at, _detail_time(record, "from_us", at))
                elif event == DISK_OK and disk_low_since is not None:
                    disk_low_since = min(disk_low_since, _detail_time(record, "refused_from_us", disk_low_since))
                    gaps += clipped(GapKind.DOWNTIME, collector.collector, disk_low_since, at, collector.symbols,
                                    "archive writer refused lines below its disk-space floor", calendar)
                    disk_low_since = None
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
                unreadable += 1
    if disk_low_since is not None:
        session = calendar.session(day)
        if session is not None and disk_low_since < session.close:
            gaps += clipped(GapKind.DOWNTIME, collector.collector, disk_low_since, session.close, collector.symbols,
                            "archive writer refused lines below its disk-space floor (space never returned)",
                            calendar)
    return gaps, unreadable


def detect_gaps(
    day: date,
    ticks: pl.DataFrame,
    collectors: Sequence[CollectorDay],
    universe: Iterable[str] = (),
    now: datetime | None = None,
    calendar: KrxCalendar | None = None,
    archive_root: Path | None = None,
    problems: Counter[str] | None = None,
    reported_volumes: Mapping[str, int] | None = None,
) -> list[Gap]:
    """Every gap of `day`; `problems` (if given) counts evidence that could not be read.
    `reported_volumes`: the broker's day volume per symbol where known (fetched before the gaps,
    for this): trades after a symbol's last archived trade become a gap to the close."""
    calendar = calendar or krx_calendar()
    session = calendar.session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day: no gaps to find")
    gaps: list[Gap] = []
    for collector in collectors:
        gaps += downtime_gaps(
            collector.intervals, day, collector=collector.collector, symbols=collector.symbols, now=now,
            calendar=calendar, interval=timedelta(seconds=collector.beat_interval_s),
        )
        if archive_root is not None:
            reported, unreadable = loss_window_gaps(archive_root, collector, day, calendar)
            gaps += reported
            if problems is not None and unreadable:
                problems["unreadable_loss_window_lines"] += unreadable
        own = ticks.filter(pl.col("collector") == collector.collector)
        if collector.intervals:
            gaps += silence_gaps(
                own, collector.intervals, day, collector=collector.collector, symbols=collector.symbols,
                now=now, calendar=calendar,
                # a past day's archive is final: only today's may be read before its last trades land
                reported_last_trade=collector.last_trade_at if now is not None else None,
            )
    if ticks.height:
        gaps += sequence_gaps(ticks, day, calendar=calendar)
    if reported_volumes:
        gaps += tail_gaps(ticks, day, reported_volumes, calendar=calendar)
    if not collectors:
        end = min(session.close, now) if now is not None else session.close
        gaps += clipped(
            GapKind.DOWNTIME, "archive", session.open, end, sorted(set(universe)),
            "no collector left heartbeats or archive files for this day", calendar,
        )
    return sorted(gaps, key=lambda g: (g.start, g.collector, g.kind.value))


def tier1_coverage(gaps: Iterable[Gap], collectors: Sequence[CollectorDay]) -> dict[str, list[Window]]:
    """Windows, per symbol, in which another collector subscribed to it was up.

    Those collectors' trades are already in raw_ticks (merged and de-duplicated), so a downtime
    or silence gap of one collector inside them costs no broker call. Sequence gaps are found on
    the merged ticks and are never covered.
    """
    coverage: dict[str, list[Window]] = {}
    for gap in gaps:
        if gap.kind == GapKind.SEQUENCE:
            continue
        for other in collectors:
            if other.collector == gap.collector:
                continue
            shared = set(gap.symbols) & set(other.symbols)
            for interval in other.intervals:
                start, end = max(gap.start, interval.start), min(gap.end, interval.end)
                if start < end:
                    for symbol in shared:
                        coverage.setdefault(symbol, []).append((start, end))
    return coverage


def requested_gaps(
    requested: Iterable[str],
    requested_by: str,
    detected: Sequence[Gap],
    collectors: Sequence[CollectorDay],
    calendar: KrxCalendar | None = None,
) -> list[Gap]:
    """Downtime the heartbeat sensor saw ("start/end" ISO windows, requested by
    "<sensor>:<collector>") that the gaps found here do not cover yet: only the parts of a
    window outside the collector's detected downtime, so a window is never widened into more
    than the sensor saw and no minute is asked for twice, and outside its up-intervals.

    The sensor infers a window from two evaluations: the last beat it saw stale, the first it saw
    fresh. The beats in between are in the heartbeat history; where Redis holds them the collector
    was up, whatever the sensor missed between its evaluations (on an accelerated clock a slow
    evaluation is tens of minutes: beats a wall second apart at the night speed, 100 minutes,
    made every collector "down since before the open" until the first evaluation in the session).

    The sensor calls a collector down after 3 of its own heartbeat intervals; the heartbeat
    history may not show a hole that long yet when the run it launched gets here (a different
    interval, the run's start-up time). Its evidence is taken rather than dropped, so the closed
    minutes of an ongoing outage are recovered by the run launched for them.
    """
    collector = requested_by.rpartition(":")[2]
    known = {c.collector: c for c in collectors}
    if collector not in known:
        return []
    history = known[collector]
    # Redis holds the beats' own stamps (what was archived by then); the archive's system stream
    # holds when each HEARTBEAT line was written, later by the collector's durability margin
    up = history.intervals if history.history_source == "redis" else ()
    covering = sorted(
        [(g.start, g.end) for g in detected if g.kind == GapKind.DOWNTIME and g.collector == collector]
        + [(interval.start, interval.end) for interval in up if interval.end > interval.start]
    )
    gaps: list[Gap] = []
    for text in requested:
        start_text, _, end_text = text.partition("/")
        try:
            start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
        except ValueError:
            continue  # informational input: a malformed window is not a gap
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            continue
        reason = f"{requested_by} saw no heartbeat from {start.isoformat()} to {end.isoformat()}"
        for piece_start, piece_end in _uncovered(start, end, covering):
            gaps += clipped(
                GapKind.DOWNTIME, collector, piece_start, piece_end, known[collector].symbols, reason, calendar
            )
    return gaps


def _uncovered(start: datetime, end: datetime, covering: Sequence[Window]) -> list[Window]:
    """The parts of [start, end) outside every window of `covering`."""
    pieces: list[Window] = [(start, end)]
    for cover in covering:
        pieces = subtract(pieces, cover)
    return pieces