"""What the archive looks like right now: per collector and stream, files, bytes, lines, last write.

Counting lines reads only the bytes appended since the previous observation (the cursor keeps
each file's size and line count), so observing every few minutes stays cheap all day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from stock_pipelines.archive.layout import SYSTEM, TRADES, day_system_files, day_trade_files
from stock_pipelines.market import KrxCalendar, Phase

_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class StreamStats:
    collector: str
    stream: str  # "trades" | "system"
    files: int
    bytes: int
    lines: int
    last_write: datetime | None  # newest mtime, UTC

    def as_metadata(self) -> dict:
        record = asdict(self)
        record["last_write"] = self.last_write.isoformat() if self.last_write else None
        return record


@dataclass(frozen=True)
class Freshness:
    passed: bool
    description: str
    stale: dict[str, float]  # collector -> seconds since its trade files last grew


def observe_day(
    roots: list[tuple[Path, str]], day: date, cursor: dict[str, list[int]] | None = None
) -> tuple[list[StreamStats], dict[str, list[int]]]:
    """Stats per (collector, stream) for `day`, and the new cursor {file label: [size, lines]}."""
    cursor = dict(cursor or {})
    totals: dict[tuple[str, str], list] = {}
    new_cursor: dict[str, list[int]] = {}
    for root, prefix in roots:
        for stream, paths in ((TRADES, day_trade_files(root, day)), (SYSTEM, day_system_files(root, day))):
            for path in paths:
                relative = path.relative_to(root)
                label = prefix + relative.as_posix()
                try:
                    stat = path.stat()
                    size, lines = _count_lines(path, stat.st_size, cursor.get(label))
                except OSError:
                    continue  # vanished or unreadable between glob and stat: next observation
                new_cursor[label] = [size, lines]
                entry = totals.setdefault((relative.parts[0], stream), [0, 0, 0, None])
                entry[0] += 1
                entry[1] += size
                entry[2] += lines
                mtime = datetime.fromtimestamp(stat.st_mtime, UTC)
                entry[3] = mtime if entry[3] is None else max(entry[3], mtime)
    stats = [StreamStats(c, s, *values) for (c, s), values in sorted(totals.items())]
    return stats, new_cursor


def _count_lines(path: Path, size: int, previous: list[int] | None) -> tuple[int, int]:
    start, lines = (previous[0], previous[1]) if previous and previous[0] <= size else (0, 0)
    if size == start:
        return size, lines
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = size - start
        while remaining > 0:
            chunk = handle.read(min(_BLOCK, remaining))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            remaining -= len(chunk)
    return size, lines


def freshness(
    stats: list[StreamStats],
    now: datetime,
    calendar: KrxCalendar,
    max_silence: timedelta,
    expected_collectors: set[str] = frozenset(),  # type: ignore[assignment]
) -> Freshness:
    """In continuous trading every collector's trade files must have grown within `max_silence`."""
    phase = calendar.phase(now)
    if phase != Phase.CONTINUOUS:
        return Freshness(True, f"market phase is {phase.value}: freshness applies in continuous trading", {})
    last = {s.collector: s.last_write for s in stats if s.stream == TRADES}
    collectors = set(last) | set(expected_collectors)
    if not collectors:
        return Freshness(False, "continuous trading and no collector has written a trade file today", {})
    stale = {}
    for collector in sorted(collectors):
        written = last.get(collector)
        silence = (now - written).total_seconds() if written else float("inf")
        if silence > max_silence.total_seconds():
            stale[collector] = silence
    if stale:
        names = ", ".join(
            f"{c} ({'no file today' if s == float('inf') else f'silent {s:.0f}s'})" for c, s in stale.items()
        )
        return Freshness(
            False, f"logs not written: {names} (limit {max_silence.total_seconds():.0f}s)", stale
        )
    return Freshness(
        True, f"{len(collectors)} collector(s) wrote within {max_silence.total_seconds():.0f}s", {}
    )


def collectors_with_trades(roots: list[tuple[Path, str]], day: date) -> set[str]:
    return {p.relative_to(root).parts[0] for root, _ in roots for p in day_trade_files(root, day)}
