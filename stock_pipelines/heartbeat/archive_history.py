"""The second source of heartbeat history: the archive's system stream.

Collectors also write ``HEARTBEAT`` / ``UP`` / ``DOWN`` lines to
``<archive root>/<collector>/system/YYYYMMDD.jsonl`` (docs/archive-format.md). When Redis lost
its data (or never had it), the same up-intervals are rebuilt from those lines with the same
rule the Redis script applies (`IntervalBuilder`). Lines that cannot be read are counted, never
skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import redis

from stock_pipelines.archive.layout import SYSTEM, check_collector_id
from stock_pipelines.heartbeat.model import (
    DEFAULT_INTERVAL_S,
    MERGE_TOLERANCE_INTERVALS,
    IntervalBuilder,
    UpInterval,
)
from stock_pipelines.heartbeat.store import HeartbeatStore

KNOWN_VERSIONS = (1,)
_POINT_EVENTS = ("HEARTBEAT", "UP", "STALLED")


@dataclass
class ArchiveHistory:
    intervals: list[UpInterval]
    beats: int = 0  # HEARTBEAT / UP / STALLED / DOWN lines used
    other_events: int = 0  # valid lines of other kinds (DISK_LOW, TORN_TAIL, ...)
    bad_lines: dict[str, int] = field(default_factory=dict)  # reason -> count


def history_from_system_lines(
    lines: Iterable[str | bytes], collector: str, interval_s: float = DEFAULT_INTERVAL_S
) -> ArchiveHistory:
    """Up-intervals from one collector's system-stream lines (in file order).

    A HEARTBEAT line may carry ``detail.interval_s``; otherwise `interval_s` is assumed.
    """
    builder = IntervalBuilder()
    parsed: list[tuple[int, str, float]] = []
    history = ArchiveHistory(intervals=[])

    def bad(reason: str) -> None:
        history.bad_lines[reason] = history.bad_lines.get(reason, 0) + 1

    for raw in lines:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            bad("malformed_json")
            continue
        if not isinstance(record, dict):
            bad("not_an_object")
            continue
        if record.get("v") not in KNOWN_VERSIONS:
            bad("unknown_version")
            continue
        at, event = record.get("at"), record.get("event")
        if not isinstance(at, int) or isinstance(at, bool) or not isinstance(event, str):
            bad("missing_field")
            continue
        if record.get("collector") != collector:
            bad("other_collector")
            continue
        if event not in (*_POINT_EVENTS, "DOWN"):
            history.other_events += 1
            continue
        detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
        own_interval = detail.get("interval_s", interval_s)
        if not isinstance(own_interval, int | float) or own_interval <= 0:
            own_interval = interval_s
        parsed.append((at, event, float(own_interval)))
        history.beats += 1

    # Sorting by time makes a file appended out of order (two writer processes) harmless.
    for at, event, own_interval in sorted(parsed, key=lambda item: item[0]):
        tolerance_us = int(own_interval * MERGE_TOLERANCE_INTERVALS * 1_000_000)
        if event == "DOWN":
            builder.close(at, tolerance_us)
        else:
            builder.beat(at, tolerance_us)
    history.intervals = builder.intervals()
    return history


def history_from_archive(
    archive_root: Path, collector: str, day: date, interval_s: float = DEFAULT_INTERVAL_S
) -> ArchiveHistory:
    path = archive_root / check_collector_id(collector) / SYSTEM / f"{day:%Y%m%d}.jsonl"
    if not path.exists():
        return ArchiveHistory(intervals=[])
    with path.open("rb") as handle:
        return history_from_system_lines(handle, collector, interval_s)


def archive_collectors(archive_root: Path, day: date) -> list[str]:
    """Collectors with a system stream file for the day."""
    return sorted(p.parent.parent.name for p in archive_root.glob(f"*/{SYSTEM}/{day:%Y%m%d}.jsonl"))


def up_intervals(
    store: HeartbeatStore | None, archive_root: Path | None, collector: str, day: date,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> tuple[list[UpInterval], str]:
    """Up-intervals from Redis, or from the archive when Redis has none; and which source answered.

    Returns ``(intervals, "redis" | "archive" | "none")``. A Redis error also falls through to the
    archive (the caller sees the source), since the point of a second source is an unreachable first.
    """
    if store is not None:
        try:
            intervals = store.up_intervals(collector, day)
        except redis.RedisError:
            intervals = []
        else:
            if intervals:
                return intervals, "redis"
    if archive_root is not None:
        history = history_from_archive(archive_root, collector, day, interval_s)
        if history.intervals:
            return history.intervals, "archive"
    return [], "none"

