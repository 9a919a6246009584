"""The record of what archive retention did: one JSON line per decision on a day older than the
kept window (deleted, or kept with the reason), at `<data root>/retention/log.jsonl`.

The Dagster run's metadata says the same for one run; this table lets a reader without the
Dagster instance (the soak's figures, an operator's `jq`) count every action across runs. The
file is rewritten whole on each run (atomic_files): never half a line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from stock_pipelines.archive.retention import RetentionPlan
from stock_pipelines.atomic_files import write_text

LOG = Path("retention") / "log.jsonl"
DELETED, KEPT, WOULD_DELETE = "deleted", "kept", "would_delete"
# a closed day's system logs: no partition, no certification, so not counted as a deleted day
CLOSED_DAY_DELETED = "deleted_closed_day"


def log_path(data_dir: Path) -> Path:
    return data_dir / LOG


def entries(plan: RetentionPlan, at: datetime, recorded_wall: float, dry_run: bool) -> list[dict]:
    """The plan's decisions on days older than the kept window (the window's own days are kept
    by definition and would only repeat every day)."""
    oldest = plan.oldest_kept_trading_day
    rows = []
    for decision in plan.decisions:
        if oldest is not None and decision.day >= oldest:
            continue
        deleted = DELETED if decision.trading_day else CLOSED_DAY_DELETED
        action = (WOULD_DELETE if dry_run else deleted) if decision.delete else KEPT
        rows.append({
            "recorded_wall": recorded_wall,
            "at": at.isoformat(),
            "as_of": plan.as_of.isoformat(),
            "day": decision.day.isoformat(),
            "action": action,
            "reason": decision.reason,
            "paths": len(decision.paths),
        })
    return rows


def append(data_dir: Path, rows: Iterable[dict]) -> Path:
    path = log_path(data_dir)
    rows = list(rows)
    if rows:
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        write_text(path, old + "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def read(data_dir: Path) -> list[dict]:
    path = log_path(data_dir)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
