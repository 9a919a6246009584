"""Incidents and their alerts in Redis: one record per open (kind, subject), and an outbox.

Keys (under the project prefix):
- ``incidents:open``        hash ``kind|subject`` -> the open incident (JSON: id, message, opened_at)
- ``incidents:outbox``      hash alert id -> the alert still to deliver (JSON: body, attempts, next_at)
- ``incidents:sending:<id>`` a short lease while one process posts that alert
- ``incidents:once:<key>``  marker of a one-off notice (a pre-flight warning), 7 days
- ``incidents:epoch``       a random id set once: a new one means Redis came back without the state
- ``incidents:adopted``     ids of incidents re-adopted in this epoch (see `adopt`), 7 days

Opening and resolving are Lua scripts, so the state change and the alert it causes are one atomic
step: when several sensor ticks or processes see the same trouble, exactly one of them opens the
incident and queues its "firing" alert; the same for "resolved". Delivery is `alert_outbox`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import redis

from stock_pipelines.ops.alerts import scrub
from stock_pipelines.redis_conn import key

ONCE_TTL_S = 7 * 86_400
TEXT_LIMIT = 2000  # Discord's message limit

_OPEN = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"""
_RESOLVE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or cjson.decode(current)['id'] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

_ADOPT = """
local first = redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
if first == 1 then
  return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Incident:
    id: str
    kind: str
    subject: str
    message: str
    opened_at: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def _field(kind: str, subject: str) -> str:
    return f"{kind}|{subject}"


def alert_body(event: str, incident: Incident, message: str, at: datetime, secrets: tuple[str, ...]) -> dict:
    """The webhook payload: `text` (Slack) and `content` (Discord) plus the structured fields."""
    message = scrub(message, secrets)
    word = "FIRING" if event == "firing" else "RESOLVED" if event == "resolved" else event.upper()
    text = f"[stock_pipelines] {word} {incident.kind} {incident.subject}: {message}"
    return {
        "text": text,
        "content": text[:TEXT_LIMIT],
        "event": event,
        "kind": incident.kind,
        "subject": scrub(incident.subject, secrets),
        "incident_id": scrub(incident.id, secrets),
        "message": message,
        "opened_at": incident.opened_at,
        "at": at.isoformat(),
    }


def outbox_entry(body: dict, at: datetime) -> str:
    return json.dumps({"body": body, "attempts": 0, "next_at": at.timestamp(), "queued_at": at.timestamp()})


class IncidentStore:
    def __init__(self, client: redis.Redis, secrets: tuple[str, ...] = ()) -> None:
        self.client = client
        self.secrets = secrets  # scrubbed from every alert besides the patterns `scrub` knows
        self.open_key = key("incidents", "open")
        self.outbox_key = key("incidents", "outbox")
        self._open = client.register_script(_OPEN)
        self._resolve = client.register_script(_RESOLVE)
        self._once = client.register_script(_ONCE)
        self._adopt = client.register_script(_ADOPT)

    def open_incidents(self) -> dict[tuple[str, str], Incident]:
        result = {}
        for raw in self.client.hvals(self.open_key):
            incident = Incident(**json.loads(raw))
            result[(incident.kind, incident.subject)] = incident
        return result

    def open(self, kind: str, subject: str, message: str, at: datetime) -> bool:
        """Open the incident and queue its firing alert; False when it is already open."""
        message = scrub(message, self.secrets)  # the record in Redis holds no secret either
        incident = Incident(f"{kind}:{subject}:{at.timestamp():.3f}", kind, subject, message, at.isoformat())
        body = alert_body("firing", incident, message, at, self.secrets)
        alert_id = f"{incident.id}:firing"
        opened = self._open(
            keys=[self.open_key, self.outbox_key],
            args=[_field(kind, subject), incident.to_json(), alert_id, outbox_entry(body, at)],
        )
        return bool(opened)

    def resolve(self, kind: str, subject: str, at: datetime) -> bool:
        """Close the open incident and queue its resolved alert; False when it was not open."""
        raw = self.client.hget(self.open_key, _field(kind, subject))
        if raw is None:
            return False
        incident = Incident(**json.loads(raw))
        body = alert_body("resolved", incident, f"resolved (was: {incident.message})", at, self.secrets)
        resolved = self._resolve(
            keys=[self.open_key, self.outbox_key],
            args=[_field(kind, subject), incident.id, f"{incident.id}:resolved", outbox_entry(body, at)],
        )
        return bool(resolved)

    def notify_once(self, kind: str, subject: str, message: str, dedupe: str, at: datetime) -> bool:
        """A one-off notice (no resolution), queued at most once per `dedupe`."""
        incident = Incident(f"{kind}:{subject}:{dedupe}", kind, subject, message, at.isoformat())
        body = alert_body("notice", incident, message, at, self.secrets)
        queued = self._once(
            keys=[key("incidents", "once", kind, dedupe), self.outbox_key],
            args=[f"{incident.id}:notice", outbox_entry(body, at), ONCE_TTL_S],
        )
        return bool(queued)

    def epoch(self) -> str:
        """This store's epoch: set once, so a different one than a caller remembers means Redis
        lost the incident state (restarted without persistence, flushed) since it looked."""
        epoch_key = key("incidents", "epoch")
        self.client.set(epoch_key, uuid.uuid4().hex, nx=True)
        return self.client.get(epoch_key)

    def adopt(self, incidents: Iterable[Incident]) -> list[Incident]:
        """Open again, without a new firing alert, incidents that were open (and alerted) before
        the state was lost, so that their resolution is still noticed and alerted. Each id at most
        once an epoch, whoever asks: several evaluators remembering it adopt it once."""
        adopted = []
        for incident in incidents:
            if self._adopt(keys=[self.open_key, key("incidents", "adopted")],
                           args=[_field(incident.kind, incident.subject), incident.to_json(), incident.id,
                                 ONCE_TTL_S]):
                adopted.append(incident)
        return adopted

    # -- the outbox ------------------------------------------------------------------------

    def pending(self) -> dict[str, dict]:
        return {alert_id: json.loads(raw) for alert_id, raw in self.client.hgetall(self.outbox_key).items()}

    def lease(self, alert_id: str, seconds: int) -> bool:
        return bool(self.client.set(key("incidents", "sending", alert_id), "1", nx=True, ex=seconds))

    def release(self, alert_id: str) -> None:
        self.client.delete(key("incidents", "sending", alert_id))

    def entry(self, alert_id: str) -> dict | None:
        raw = self.client.hget(self.outbox_key, alert_id)
        return None if raw is None else json.loads(raw)

    def delivered(self, alert_id: str) -> None:
        self.client.hdel(self.outbox_key, alert_id)

    def failed(self, alert_id: str, entry: dict, error: str, next_at: float) -> None:
        updated = {**entry, "attempts": entry["attempts"] + 1, "next_at": next_at, "last_error": error}
        self.client.hset(self.outbox_key, alert_id, json.dumps(updated))
