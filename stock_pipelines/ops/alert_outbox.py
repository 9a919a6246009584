"""Delivering the queued alerts (`IncidentStore`'s outbox): each until the webhook takes it, once.

Every evaluation drains the outbox. An alert whose POST fails stays queued with its attempt count
and is tried again after a backoff with full jitter (`resilience.backoff.Backoff`: 5 s doubling to
10 min, on the project clock). A loop over the outbox and not `tenacity`: the retries span sensor
ticks and processes, so the state lives in Redis, not in a call stack.

Never twice: a process takes a short lease on an alert before posting it and removes it from the
outbox once the webhook answered 2xx, so two processes draining together post it once. Only a
crash between the webhook's 2xx and that removal could post it again; the payload's
`incident_id` and `event` let a receiver drop such a repeat.

A resolved alert waits while its incident's firing alert is still undelivered: order is kept.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from stock_pipelines.ops.alerts import WebhookError, WebhookSender
from stock_pipelines.ops.incident_store import IncidentStore
from stock_pipelines.resilience.backoff import Backoff

RETRY_BACKOFF = Backoff(base=5.0, cap=600.0)
LEASE_S = 30  # longer than one POST's timeout


@dataclass
class DrainResult:
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # alert id -> why
    waiting: int = 0  # queued, not due yet (backoff, or behind its firing alert)


def drain(
    store: IncidentStore,
    sender: WebhookSender,
    now: float,
    backoff: Backoff = RETRY_BACKOFF,
    rng: random.Random | None = None,
) -> DrainResult:
    """Post every due alert, oldest first; `now` is the project clock's epoch seconds."""
    result = DrainResult()
    blocked: set[str] = set()  # incidents with an earlier alert still queued
    entries = sorted(store.pending().items(), key=lambda item: (item[1]["queued_at"], item[0]))
    for alert_id, entry in entries:
        incident = entry["body"].get("incident_id", alert_id)
        if incident in blocked or entry["next_at"] > now:
            blocked.add(incident)
            result.waiting += 1
            continue
        if not store.lease(alert_id, LEASE_S):
            blocked.add(incident)  # another process is posting it
            result.waiting += 1
            continue
        try:
            entry = store.entry(alert_id)
            if entry is None:  # delivered by another process since we listed the outbox
                continue
            try:
                sender.post(entry["body"])
            except WebhookError as error:
                delay = backoff.delay(entry["attempts"], rng)
                store.failed(alert_id, entry, str(error), now + delay)
                result.failed[alert_id] = str(error)
                blocked.add(incident)
                continue
            store.delivered(alert_id)
            result.delivered.append(alert_id)
        finally:
            store.release(alert_id)
    return result
