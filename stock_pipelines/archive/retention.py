"""Retention of the raw JSONL archive: which days may go, and deleting exactly those.

A day's raw files are deleted only when (1) it is older than the newest `keep` trading days up
to `as_of` (trading days of the KRX calendar: weekends, holidays and Dec 31 do not count), (2) it
is a trading day, (3) its raw_ticks partition is materialized, (4) that partition's checks passed
and (5) the day is certified (its quality report's verdict): the archive is the only copy of a
day's trades, so a day still short of certification keeps it for the next recovery.

A closed day (weekend, holiday) older than the window has no partition, so nothing reads its
files: when they are only the collectors' system logs (collectors run and beat every calendar
day), they are deleted too, or they would pile up for good. A closed day with trades or
quarantined lines is kept and reported (a calendar mistake, or a feed gone wrong). Only the
day's own archive paths are touched:
`<collector>/trades/YYYYMMDD/*.jsonl`, `<collector>/system/YYYYMMDD.jsonl` and
`<collector>/quarantine/YYYYMMDD/*.torn`; anything else found there is kept and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from stock_pipelines.archive.layout import QUARANTINE, SYSTEM, TRADES
from stock_pipelines.market import KrxCalendar

MIN_KEEP, MAX_KEEP, DEFAULT_KEEP = 3, 10, 5
_DAY = re.compile(r"^\d{8}$")
_DELETABLE_SUFFIXES = (".jsonl", ".torn")


@dataclass(frozen=True)
class DayStatus:
    materialized: bool
    checks_passed: bool
    detail: str = ""
    certified: bool = False  # the day's latest verdict: its quality report, unless a check failed since
    verdict: str = ""  # why a certified report no longer stands, when it does not


@dataclass(frozen=True)
class Decision:
    day: date
    delete: bool
    reason: str
    paths: tuple[Path, ...]
    trading_day: bool = True


@dataclass
class RetentionPlan:
    as_of: date
    keep_trading_days: int
    oldest_kept_trading_day: date | None
    decisions: list[Decision]

    @property
    def to_delete(self) -> list[Decision]:
        return [d for d in self.decisions if d.delete]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.delete]


@dataclass
class RetentionReport:
    deleted: list[Path] = field(default_factory=list)
    left: list[Path] = field(default_factory=list)  # unexpected files inside a deleted day: kept


def archive_days(roots: list[Path]) -> dict[date, list[Path]]:
    """Every day that has raw archive paths, with those paths (days with odd names are ignored)."""
    days: dict[date, list[Path]] = {}
    for root in roots:
        candidates = [
            *root.glob(f"*/{TRADES}/*"),
            *root.glob(f"*/{SYSTEM}/*.jsonl"),
            *root.glob(f"*/{QUARANTINE}/*"),
        ]
        for path in candidates:
            name = path.stem if path.parent.name == SYSTEM else path.name
            if path.parent.name == SYSTEM and not path.is_file():
                continue
            if path.parent.name in (TRADES, QUARANTINE) and not path.is_dir():
                continue
            day = _parse_day(name)
            if day is not None:
                days.setdefault(day, []).append(path)
    return {day: sorted(paths) for day, paths in sorted(days.items())}


def plan(
    roots: list[Path],
    as_of: date,
    status: Callable[[date], DayStatus],
    calendar: KrxCalendar,
    keep_trading_days: int = DEFAULT_KEEP,
) -> RetentionPlan:
    if not MIN_KEEP <= keep_trading_days <= MAX_KEEP:
        raise ValueError(f"keep_trading_days must be {MIN_KEEP}..{MAX_KEEP}, not {keep_trading_days}")
    kept_days: list[date] = []
    probe: date | None = as_of if calendar.is_trading_day(as_of) else calendar.previous_trading_day(as_of)
    while probe is not None and len(kept_days) < keep_trading_days:
        kept_days.append(probe)
        probe = calendar.previous_trading_day(probe)
    oldest = kept_days[-1] if kept_days else None
    decisions = []
    for day, paths in archive_days(roots).items():
        decisions.append(_decide(day, tuple(paths), oldest, keep_trading_days, status, calendar))
    return RetentionPlan(as_of, keep_trading_days, oldest, decisions)


def _decide(day, paths, oldest, keep, status, calendar) -> Decision:
    if oldest is None or day >= oldest:
        return Decision(day, False, f"within the newest {keep} trading days", paths)
    try:
        trading = calendar.is_trading_day(day)
    except ValueError:
        trading = False
    if not trading:
        if all(path.parent.name == SYSTEM for path in paths):
            reason = "not a KRX trading day: only collectors' system logs, which no partition reads"
            return Decision(day, True, reason, paths, trading_day=False)
        reason = "not a KRX trading day, yet it has trades or quarantined lines: kept for a person"
        return Decision(day, False, reason, paths, trading_day=False)
    state = status(day)
    if not state.materialized:
        return Decision(day, False, f"raw_ticks[{day}] is not materialized", paths)
    if not state.checks_passed:
        return Decision(day, False, f"raw_ticks[{day}] checks have not passed: {state.detail}", paths)
    if not state.certified:
        why = state.verdict or "its quality report is missing or not certified"
        reason = f"{day} is not certified: {why}"
        return Decision(day, False, reason, paths)
    reason = f"older than {keep} trading days; raw_ticks[{day}] materialized, checks passed, certified"
    return Decision(day, True, reason, paths)


def apply(retention_plan: RetentionPlan) -> RetentionReport:
    report = RetentionReport()
    for decision in retention_plan.to_delete:
        for path in decision.paths:
            if path.is_file() and path.suffix in _DELETABLE_SUFFIXES:
                path.unlink()
                report.deleted.append(path)
            elif path.is_dir():
                for child in sorted(path.iterdir()):
                    if child.is_file() and child.suffix in _DELETABLE_SUFFIXES:
                        child.unlink()
                        report.deleted.append(child)
                    else:
                        report.left.append(child)
                if not any(path.iterdir()):
                    path.rmdir()
                    report.deleted.append(path)
    return report


def _parse_day(name: str) -> date | None:
    if not _DAY.fullmatch(name):
        return None
    try:
        return datetime.strptime(name, "%Y%m%d").date()
    except ValueError:
        return None
