"""Time to detect and time to recover of each injected fault, in wall seconds.

Detected: the first incident about the fault's subject (one name contains the other: fault
"kis-1", incident "kis-1"; fault "kis", incidents "kis-1", "kis-2") opened on the fault's day
(exchange time) that fired after the injection (the receiver's clock), or the first run a
sensor launched for the fault's day after it, whichever came first. Recovered: that incident's resolution; for a run, the end of the first successful
sensor-launched run for the day from the injection on. A fault nothing noticed shows as not
detected: the row says so rather than borrowing an unrelated incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stock_pipelines.market import SEOUL

from stock_pipelines.soak.figures_alerts import AlertFigures
from stock_pipelines.soak.figures_dagster import RunRow

SUCCESS = "SUCCESS"


@dataclass(frozen=True)
class FaultRow:
    id: str
    kind: str
    subject: str
    day: str
    detect_s: float | None
    recover_s: float | None
    detected_by: str  # "incident <kind> <subject>", "run <job> by <launcher>" or "not detected"


def _about(fault: dict, incident) -> bool:
    ours, theirs = fault.get("subject", ""), incident.subject
    if not ours or not theirs or not (ours in theirs or theirs in ours):
        return False
    return not incident.opened_at or _seoul_day(incident.opened_at) == fault["day"]


def _seoul_day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(SEOUL).date().isoformat()


def _timed(fault: dict, alerts: AlertFigures, runs: list[RunRow]) -> FaultRow:
    injected = float(fault["injected_wall"])
    candidates: list[tuple[float, str, float | None]] = []  # (detected wall, by, recovered wall)
    for incident in alerts.incidents:
        fired = [w for w in incident.firing_walls if w >= injected]
        if fired and _about(fault, incident):
            resolved = [w for w in incident.resolved_walls if w >= fired[0]]
            by = f"incident {incident.kind} {incident.subject}"
            candidates.append((fired[0], by, min(resolved, default=None)))
    sensor_runs = sorted(
        (r for r in runs if r.partition == fault["day"] and r.launched_by.startswith("sensor")
         and r.created_wall >= injected),
        key=lambda r: r.created_wall,
    )
    if sensor_runs:
        first = sensor_runs[0]
        done = [r.ended_wall for r in sensor_runs if r.status == SUCCESS and r.ended_wall is not None]
        by = f"run {first.job} by {first.launched_by}"
        candidates.append((first.created_wall, by, min(done, default=None)))
    named = (fault["id"], fault["kind"], fault.get("subject", ""), fault["day"])
    if not candidates:
        return FaultRow(*named, None, None, "not detected")
    detected, by, recovered = min(candidates, key=lambda c: c[0])
    recover_s = None if recovered is None else round(recovered - injected, 1)
    return FaultRow(*named, round(detected - injected, 1), recover_s, by)


def time_faults(faults: list[dict], alerts: AlertFigures, runs: list[RunRow]) -> list[FaultRow]:
    return [_timed(fault, alerts, runs) for fault in faults]
