"""Where archive files live.

    <archive root>/<collector id>/trades/YYYYMMDD/HH_00.jsonl   trades, rolled hourly
    <archive root>/<collector id>/system/YYYYMMDD.jsonl          system stream, rolled daily

Dates and hours are Asia/Seoul wall time of the moment the line is written (receive time).
A collector id becomes a path component, so it is validated: never a raw string in a path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from stock_pipelines.market import SEOUL

COLLECTOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TRADES = "trades"
SYSTEM = "system"


class InvalidCollectorId(ValueError):
    pass


def check_collector_id(collector_id: str) -> str:
    if not COLLECTOR_ID_PATTERN.fullmatch(collector_id) or collector_id in (".", ".."):
        raise InvalidCollectorId(
            f"collector id {collector_id!r} is not allowed: use 1-64 letters, digits, '_', '.', '-'"
        )
    return collector_id


def trades_path(root: Path, collector_id: str, at: datetime) -> Path:
    local = at.astimezone(SEOUL)
    return root / check_collector_id(collector_id) / TRADES / f"{local:%Y%m%d}" / f"{local:%H}_00.jsonl"


def system_path(root: Path, collector_id: str, at: datetime) -> Path:
    local = at.astimezone(SEOUL)
    return root / check_collector_id(collector_id) / SYSTEM / f"{local:%Y%m%d}.jsonl"


def day_trade_files(root: Path, day: date) -> list[Path]:
    """Every collector's trade files for one Seoul day, sorted (collector, hour)."""
    return sorted(root.glob(f"*/{TRADES}/{day:%Y%m%d}/*.jsonl"))


def day_system_files(root: Path, day: date) -> list[Path]:
    return sorted(root.glob(f"*/{SYSTEM}/{day:%Y%m%d}.jsonl"))


QUARANTINE = "quarantine"


def torn_tail_path(root: Path, collector_id: str, original: Path, offset: int) -> Path:
    """Where a writer puts the torn tail it cut off `original` at byte `offset`.

    `<collector>/quarantine/YYYYMMDD/<stream>-<file name>.<offset>.torn`: outside the trades
    glob, so only the raw_ticks reader's torn-tail pass sees it (as one `torn_tail` line).
    """
    stream = original.parent.parent.name if original.parent.parent.name == TRADES else SYSTEM
    day = original.parent.name if stream == TRADES else original.stem
    return (
        root / check_collector_id(collector_id) / QUARANTINE / day / f"{stream}-{original.name}.{offset}.torn"
    )


def day_torn_tail_files(root: Path, day: date) -> list[Path]:
    return sorted(root.glob(f"*/{QUARANTINE}/{day:%Y%m%d}/{TRADES}-*.torn"))
