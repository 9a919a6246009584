"""Governance of automatic recovery, in Redis (survives daemon restarts): the glue between the
heartbeat sensor, the run-status sensor, `resume` and the resilience package.

- `verdict()`: may an automatic run start (dormant mode, backoff after a failed recovery) and the
  deployment's broker's breaker state (the caller names that broker: the `broker` resource's).
  A PERMANENT_OPEN breaker puts the automation into dormant mode (both are alerted as incidents
  by the incident sensor, `ops.incident_tick`). `decision()` is the first part alone, over every
  broker's breaker, for callers with no broker of their own.
- `record_run(...)`: a recovery run ended. A failure backs off (5 s doubling to 10 min, full
  jitter) and queues a retry of the same window with attempt + 1; ten in a row mean dormant mode.
- `resume(by, reason)`: a person resets the broker breakers and ends dormant mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import redis

from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock as ops_clock
from stock_pipelines.ops.heartbeat_rules import Governance
from stock_pipelines.ops.recovery_window import Window
from stock_pipelines.recovery.sources import breaker_for
from stock_pipelines.redis_conn import key
from stock_pipelines.resilience.breaker import CircuitBreaker, State
from stock_pipelines.resilience.dormant import DormantGuard, DormantState
from stock_pipelines.resilience.state_store import RedisStateStore

BROKERS = ("kis", "kiwoom")
HISTORY_KEPT = 50


class RecoveryGovernance:
    def __init__(
        self,
        client: redis.Redis,
        broker: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # the automation's clock (ops.clock, fake-able in tests): retries' not_before must be
        # comparable with the "now" the heartbeat sensor evaluates at
        # `broker`: the deployment's (kis or kiwoom), whose breaker `verdict` reports; None for the
        # questions about every broker (dormant mode, run outcomes, resume)
        clock = clock or (lambda: ops_clock.now().timestamp())
        self.client, self.broker, self.clock = client, broker, clock
        self.guard = DormantGuard(RedisStateStore(client), clock)

    def breaker(self, broker: str | None = None) -> CircuitBreaker:
        name = broker or self.broker
        if name is None:
            raise ValueError("no broker named: pass the deployment's broker (the broker resource's name)")
        return breaker_for(name, self.client)

    def breakers(self) -> dict[str, CircuitBreaker]:
        return {name: self.breaker(name) for name in BROKERS}

    # -- the sensor's question ---------------------------------------------------------------

    def decision(self) -> Governance:
        """May an automatic run call a broker now, over every broker's breaker (without the
        breaker state of one)."""
        return self._verdict(None)

    def verdict(self) -> Governance:
        if self.broker is None:
            raise ValueError(
                "verdict() reports the deployment's breaker: name its broker (or ask decision())"
            )
        return self._verdict(self.broker)

    def _verdict(self, broker: str | None) -> Governance:
        states = {name: b.snapshot() for name, b in self.breakers().items()}
        decision = self.guard.decide([(f"broker:{n}", s.state) for n, s in states.items()])
        if broker is None:
            return Governance(allowed=decision.allowed, reason=decision.reason)
        own = states[broker]
        retry_at = self.breaker(broker).retry_at() if own.state is State.OPEN else None
        return Governance(
            allowed=decision.allowed,
            reason=decision.reason,
            breaker_state=own.state.value,
            breaker_retry_at=datetime.fromtimestamp(retry_at, SEOUL) if retry_at else None,
        )

    # -- the run-status sensor's report ------------------------------------------------------

    def record_run(
        self, run_id: str, succeeded: bool, window: Window | None, detail: str = ""
    ) -> Window | None:
        """Count the outcome; after a failure queue (and return) the retry: it launches after the
        backoff, or, when dormant, once a person resumes."""
        state = self.guard.record_recovery(succeeded, detail)
        self._remember(run_id, succeeded, window, detail)
        if succeeded or window is None:
            return None
        not_before = datetime.fromtimestamp(state.next_attempt_at or self.clock(), SEOUL)
        retry = replace(
            window, attempt=window.attempt + 1, not_before=not_before, why=f"retry after: {detail[:120]}"
        )
        self.client.hset(key("recovery", "retries"), retry.run_key, json.dumps(retry.to_json()))
        return retry

    def due_retries(self) -> list[Window]:
        """Queued retries (the sensor dedupes them by run key and honours `not_before`)."""
        raw = self.client.hgetall(key("recovery", "retries"))
        return sorted((Window.from_json(json.loads(v)) for v in raw.values()), key=lambda w: w.run_key)

    def forget_retries(self, run_keys: list[str]) -> None:
        if run_keys:
            self.client.hdel(key("recovery", "retries"), *run_keys)

    def _remember(self, run_id: str, succeeded: bool, window: Window | None, detail: str) -> None:
        entry = {
            "run_id": run_id,
            "succeeded": succeeded,
            "at": self.clock(),
            "detail": detail[:500],
            "window": window.to_json() if window else None,
        }
        pipe = self.client.pipeline()
        pipe.lpush(key("recovery", "history"), json.dumps(entry))
        pipe.ltrim(key("recovery", "history"), 0, HISTORY_KEPT - 1)
        pipe.execute()

    def history(self, limit: int = 10) -> list[dict]:
        return [json.loads(e) for e in self.client.lrange(key("recovery", "history"), 0, limit - 1)]

    # -- people ------------------------------------------------------------------------------

    def resume(self, by: str, reason: str) -> dict:
        """Reset every non-CLOSED breaker and end dormant mode; queued retries become due now."""
        reset = {}
        for name, breaker in self.breakers().items():
            if breaker.state is not State.CLOSED:
                reset[name] = breaker.reset(by, reason).state.value
        state = self.guard.resume(by, reason)
        now = datetime.fromtimestamp(self.clock(), SEOUL)
        for retry in self.due_retries():
            due = replace(retry, not_before=now)
            self.client.hset(key("recovery", "retries"), due.run_key, json.dumps(due.to_json()))
        return {"breakers_reset": reset, "dormant": state.dormant, "resumed_by": by, "reason": reason}

    def dormant_state(self) -> DormantState:
        return self.guard.state()
