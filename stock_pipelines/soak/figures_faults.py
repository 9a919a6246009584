"""Time to detect and time to recover of each injected fault, in wall seconds.

Detected: the first incident about the fault's subject (one name contains the other: fault
"kis-1", incident "kis-1"; fault "kis", incidents "kis-1", "kis-2") opened on the fault's day
(exchange time) that fired after the injection (the receiver's clock), or the first run a
sensor launched for the fault's day after it, whichever came first. Recovered: that incident's resolution; for a run, the end of the first successful
sensor-launched run for the day from the injection on. A fault nothing noticed shows as not
detected: the row says so rather than borrowing an unrelated incident.

A fault whose own incident kind names it (`disk_floor` -> `disk_low`) is timed by that kind
only, whatever the subjects: the archive's floor strikes every collector writing to it, each
with an incident of its own. Detected: the first of them to fire after the injection on the
fault's day; recovered: the last of their resolutions, the moment every writer accepts trades
again (a collector's status hash drops `disk_low` when its writer writes DISK_OK). A run
launched meanwhile belongs to the group's other faults, so it does not count here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.incidents import DISK_LOW

from stock_pipelines.soak.figures_alerts import AlertFigures
from stock_pipelines.soak.figures_dagster import RunRow

SUCCESS = "SUCCESS"
OWN_INCIDENT = {"disk_floor": DISK_LOW}  # fault kind -> the incident kind only it raises


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


def _timed_by_own_incidents(fault: dict, alerts: AlertFigures, incident_kind: str) -> FaultRow:
    injected = float(fault["injected_wall"])
    named = (fault["id"], fault["kind"], fault.get("subject", ""), fault["day"])
    struck = [i for i in alerts.incidents
              if i.kind == incident_kind and any(w >= injected for w in i.firing_walls)
              and (not i.opened_at or _seoul_day(i.opened_at) == fault["day"])]
    if not struck:
        return FaultRow(*named, None, None, "not detected")
    detected = min(w for i in struck for w in i.firing_walls if w >= injected)
    resolved = [min((w for w in i.resolved_walls if w >= injected), default=None) for i in struck]
    recover_s = None if None in resolved else round(max(resolved) - injected, 1)
    by = f"incident {incident_kind} {', '.join(sorted({i.subject for i in struck}))}"
    return FaultRow(*named, round(detected - injected, 1), recover_s, by)


def _timed(fault: dict, alerts: AlertFigures, runs: list[RunRow]) -> FaultRow:
    if fault["kind"] in OWN_INCIDENT:
        return _timed_by_own_incidents(fault, alerts, OWN_INCIDENT[fault["kind"]])
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
