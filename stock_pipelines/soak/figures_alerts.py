"""Incidents and their alerts as the soak's webhook receiver got them (alerts.jsonl), and the
incidents still open in Redis when it is reachable.

Every incident must produce exactly one "firing" and one "resolved" alert; an incident is one
`incident_id` (the store opens at most one per (kind, subject) at a time, see ops.incident_store).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FIRING, RESOLVED, NOTICE = "firing", "resolved", "notice"


@dataclass
class IncidentAlerts:
    incident_id: str
    kind: str
    subject: str
    opened_at: str = ""  # ISO, the project clock's (the exchange's) time the incident opened
    firing_walls: list[float] = field(default_factory=list)
    resolved_walls: list[float] = field(default_factory=list)
    still_open: bool = False

    @property
    def problem(self) -> str:
        name = f"incident {self.kind} {self.subject} ({self.incident_id})"
        if len(self.firing_walls) != 1:
            return f"{name}: {len(self.firing_walls)} firing alerts, not 1"
        if len(self.resolved_walls) != 1:
            open_note = " (still open)" if self.still_open else ""
            return f"{name}: {len(self.resolved_walls)} resolutions, not 1{open_note}"
        return ""


@dataclass
class AlertFigures:
    incidents: list[IncidentAlerts]
    notices: int
    unreadable: int  # posts whose body is not an incident alert

    @property
    def alerts(self) -> int:
        return sum(len(i.firing_walls) for i in self.incidents)

    @property
    def resolutions(self) -> int:
        return sum(len(i.resolved_walls) for i in self.incidents)

    @property
    def problems(self) -> list[str]:
        found = [i.problem for i in self.incidents if i.problem]
        if self.unreadable:
            found.append(f"{self.unreadable} webhook posts are not incident alerts")
        return found

    def by_kind(self) -> Counter:
        return Counter(i.kind for i in self.incidents)


def read_alerts(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pair(posts: list[dict], still_open: dict[str, tuple[str, str]] | None = None) -> AlertFigures:
    """Group the receiver's posts by incident; `still_open` maps the ids of incidents open in Redis
    (or whose alert is still in the outbox) to their (kind, subject)."""
    incidents: dict[str, IncidentAlerts] = {}
    notices = unreadable = 0
    for post in posts:
        body = post.get("body")
        if not isinstance(body, dict) or "event" not in body or "incident_id" not in body:
            unreadable += 1
            continue
        if body["event"] == NOTICE:
            notices += 1
            continue
        incident_id = body["incident_id"]
        incident = incidents.setdefault(
            incident_id,
            IncidentAlerts(
                incident_id, body.get("kind", ""), body.get("subject", ""), body.get("opened_at", "")
            ),
        )
        if body["event"] == FIRING:
            incident.firing_walls.append(float(post["received_wall"]))
        elif body["event"] == RESOLVED:
            incident.resolved_walls.append(float(post["received_wall"]))
        else:
            unreadable += 1
    for incident_id, (kind, subject) in (still_open or {}).items():
        incidents.setdefault(incident_id, IncidentAlerts(incident_id, kind, subject)).still_open = True
    ordered = sorted(
        incidents.values(), key=lambda i: (min(i.firing_walls, default=float("inf")), i.incident_id)
    )
    return AlertFigures(ordered, notices, unreadable)


def open_in_redis(redis_url: str) -> dict[str, tuple[str, str]] | None:
    """Incidents open in the soak's Redis and those whose alert was never delivered; None when
    Redis is gone (the run is over): alerts.jsonl is then the only record."""
    import redis

    from stock_pipelines.ops.incident_store import IncidentStore

    client = redis.Redis.from_url(
        redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )
    try:
        store = IncidentStore(client)
        found = {i.id: (i.kind, i.subject) for i in store.open_incidents().values()}
        for entry in store.pending().values():
            body = entry.get("body", {})
            if body.get("event") in (FIRING, RESOLVED):
                found.setdefault(body["incident_id"], (body.get("kind", ""), body.get("subject", "")))
        return found
    except redis.RedisError:
        return None
    finally:
        client.close()
