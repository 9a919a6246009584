"""The operator's one place to look: a JSON-ready document of the automation's state.

Collectors (state and last heartbeat), breakers (state, failure count, reason), dormant mode and
its reason, the kill switches, the last recovery runs and what they recovered, queued retries,
the open incidents and the alerts not yet delivered, and how many days of supported KRX calendar
are left (with a warning below 60).
"""

from __future__ import annotations

from datetime import datetime

import redis

from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import SEOUL, CalendarHorizon
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.incident_store import IncidentStore
from stock_pipelines.resilience.flags import FLAG_NAMES, FeatureFlags

STALE_INTERVALS = 3.0


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, SEOUL).isoformat()


def collector_states(store: HeartbeatStore, now: datetime) -> dict[str, dict]:
    result = {}
    for name in sorted(store.collectors()):
        beat = store.latest(name)
        if beat is None:
            result[name] = {"state": "unknown", "last_heartbeat": None}
            continue
        age = (now - beat.at).total_seconds()
        if beat.status.value == "stopping":
            state = "stopped"
        elif age > beat.interval_s * STALE_INTERVALS:
            state = "stale"
        else:
            state = beat.status.value  # ok / starting / stalled
        result[name] = {
            "state": state,
            "last_heartbeat": beat.at.astimezone(SEOUL).isoformat(),
            "age_s": round(age, 1),
            "started_at": beat.started_at.astimezone(SEOUL).isoformat(),
            "host": beat.host,
            "pid": beat.pid,
            "symbols": len(beat.symbols),
        }
    return result


def incidents_summary(store: IncidentStore) -> dict:
    opened = sorted(store.open_incidents().values(), key=lambda i: i.opened_at)
    return {
        "open": [{"kind": i.kind, "subject": i.subject, "since": i.opened_at, "message": i.message} for i in opened],
        "alerts_undelivered": len(store.pending()),
    }


def status_document(client: redis.Redis, now: datetime, broker: str | None = None) -> dict:
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return {"ok": False, "at": now.isoformat(), "redis": f"unreachable: {type(error).__name__}: {error}"}
    store = HeartbeatStore(client, clock=lambda: now)
    governance = RecoveryGovernance(client, broker)
    flags = FeatureFlags(client)
    dormant = governance.dormant_state()
    breakers = {}
    for name, breaker in governance.breakers().items():
        snap = breaker.snapshot()
        breakers[name] = {
            "state": snap.state.value,
            "consecutive_failures": snap.consecutive_failures,
            "reason": snap.reason,
            "changed_at": _iso(snap.changed_at),
            "changed_by": snap.changed_by,
        }
    switches = {}
    for flag in FLAG_NAMES:
        state = flags.state(flag)
        switches[flag] = {"enabled": state.enabled, "source": state.source}
    history = governance.history(10)
    for entry in history:
        entry["at"] = _iso(entry.get("at"))
    return {
        "ok": not dormant.dormant and all(b["state"] == "CLOSED" for b in breakers.values()),
        "at": now.isoformat(),
        "redis": "ok",
        "collectors": collector_states(store, now),
        "breakers": breakers,
        "dormant": {
            "dormant": dormant.dormant,
            "since": _iso(dormant.since),
            "reason": dormant.reason,
            "consecutive_failed_recoveries": dormant.consecutive_failed_recoveries,
            "next_attempt_at": _iso(dormant.next_attempt_at),
            "resumed_by": dormant.resumed_by,
            "resumed_reason": dormant.resumed_reason,
            "resumed_at": _iso(dormant.resumed_at),
        },
        "kill_switches": switches,
        "last_recovery_runs": history,
        "queued_retries": [w.run_key for w in governance.due_retries()],
        "incidents": incidents_summary(IncidentStore(client)),
        "calendar": CalendarHorizon(now.astimezone(SEOUL).date()).to_json(),
    }
