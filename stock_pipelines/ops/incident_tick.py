"""One evaluation of the incident sensor against Redis: read each source, open and resolve
incidents (`incidents` decides, `incident_store` records), then deliver the queued alerts.

Sources: the heartbeat store (down, stalled), the collectors' status hashes (disk floor), the
brokers' breakers, dormant mode, the latest pre-flight (recorded by the pre-flight job with
`record_preflight`), and the archive freshness verdict the caller read from Dagster (None: not
observed this time).

What the caller remembers of the open incidents (`TickResult.remembered`, kept in the sensor's
cursor outside Redis) is handed back on the next evaluation: when Redis has come back without the
incident state (a new store epoch), those incidents are adopted again, so that one that alerted
before the loss still gets its resolution.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import redis

from stock_pipelines.collector.status import read_status
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.ops.alert_outbox import DrainResult, drain
from stock_pipelines.ops.alerts import WebhookSender
from stock_pipelines.ops.incident_store import Incident, IncidentStore
from stock_pipelines.ops.incidents import (
    CollectorView,
    Observation,
    breaker_observations,
    collector_observations,
    dormant_observation,
    preflight_observation,
    transitions,
)
from stock_pipelines.recovery.sources import breaker_for
from stock_pipelines.redis_conn import key
from stock_pipelines.resilience.dormant import DormantGuard
from stock_pipelines.resilience.state_store import RedisStateStore

BROKERS = ("kis", "kiwoom")


@dataclass
class TickResult:
    opened: list[tuple[str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    delivery: DrainResult = field(default_factory=DrainResult)
    adopted: list[tuple[str, str]] = field(default_factory=list)  # open again after Redis lost them
    remembered: dict = field(default_factory=dict)  # the store's epoch and open incidents, for the next tick

    def describe(self) -> str:
        parts = [f"opened {len(self.opened)}", f"resolved {len(self.resolved)}",
                 f"alerts delivered {len(self.delivery.delivered)}"]
        if self.adopted:
            parts.append(f"adopted {len(self.adopted)} lost with Redis")
        if self.delivery.failed:
            parts.append(f"failed {len(self.delivery.failed)} (retried later)")
        if self.delivery.waiting:
            parts.append(f"waiting {self.delivery.waiting}")
        return ", ".join(parts)


def record_preflight(client: redis.Redis, ok: bool, summary: str, at: datetime) -> None:
    client.set(key("preflight", "last"), json.dumps({"ok": ok, "summary": summary, "at": at.isoformat()}))


def last_preflight(client: redis.Redis) -> dict | None:
    raw = client.get(key("preflight", "last"))
    return None if raw is None else json.loads(raw)


def collector_views(client: redis.Redis, now: datetime) -> list[CollectorView]:
    store = HeartbeatStore(client, clock=lambda: now)
    statuses = read_status(client)
    views = []
    for name in sorted(set(store.collectors()) | set(statuses)):
        latest = store.latest(name)
        status = statuses.get(name, {})
        disk_low = status.get("disk_low")
        views.append(
            CollectorView(
                name,
                latest.at if latest else None,
                latest.interval_s if latest else 5.0,
                latest.status.value if latest else "ok",
                bool(disk_low) if disk_low is not None else None,
                status.get("state"),
            )
        )
    return views


def observe(client: redis.Redis, now: datetime) -> list[Observation]:
    """Every source that lives in Redis."""
    observations = collector_observations(now, collector_views(client, now))
    snapshots = {name: breaker_for(name, client).snapshot() for name in BROKERS}
    observations += breaker_observations({n: (s.state.value, s.reason) for n, s in snapshots.items()})
    dormant = DormantGuard(RedisStateStore(client), lambda: now.timestamp()).state()
    observations.append(dormant_observation(dormant.dormant, dormant.reason))
    preflight = preflight_observation(last_preflight(client))
    if preflight is not None:
        observations.append(preflight)
    return observations


def apply(store: IncidentStore, observations: Iterable[Observation], now: datetime) -> TickResult:
    result = TickResult()
    change = transitions(store.open_incidents(), observations)
    for kind, subject, message in change.to_open:
        if store.open(kind, subject, message, now):
            result.opened.append((kind, subject))
    for kind, subject in change.to_resolve:
        if store.resolve(kind, subject, now):
            result.resolved.append((kind, subject))
    return result


def incident_tick(
    client: redis.Redis,
    sender: WebhookSender,
    now: datetime,
    extra: Iterable[Observation] = (),
    secrets: tuple[str, ...] = (),
    remembered: dict | None = None,
) -> TickResult:
    """Observe, open/resolve, deliver. `extra`: observations from outside Redis (freshness);
    `remembered`: the previous tick's `TickResult.remembered` (None: nothing remembered)."""
    store = IncidentStore(client, secrets)
    epoch = store.epoch()
    adopted = []
    if remembered and remembered.get("epoch") != epoch:
        adopted = store.adopt(Incident(**fields) for fields in remembered.get("open", []))
    result = apply(store, [*observe(client, now), *extra], now)
    result.adopted = [(incident.kind, incident.subject) for incident in adopted]
    result.delivery = drain(store, sender, now.timestamp())
    result.remembered = {"epoch": epoch, "open": [i.__dict__ for i in store.open_incidents().values()]}
    return result
