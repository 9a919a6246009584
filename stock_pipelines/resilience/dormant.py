"""Dormant mode: after 10 consecutive failed recoveries, or while any breaker is PERMANENT_OPEN,
no automatic run starts until a person resumes with a reason.

Between failed recoveries the next automatic attempt waits a full-jitter backoff (5 s doubling
to 10 min). State lives in a `StateStore` (Redis: survives daemon restarts). The sensor asks
`decide()` at every evaluation; kill switches (`flags.py`) are checked by the caller too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace

from stock_pipelines.resilience.backoff import RECOVERY_BACKOFF, Backoff
from stock_pipelines.resilience.breaker import AUTOMATIC, State
from stock_pipelines.resilience.state_store import StateStore

STORE_NAME = "dormant"


@dataclass(frozen=True)
class DormantState:
    dormant: bool = False
    since: float | None = None
    reason: str = ""
    consecutive_failed_recoveries: int = 0
    next_attempt_at: float | None = None  # backoff after a failed recovery (epoch s)
    resumed_by: str = ""
    resumed_reason: str = ""
    resumed_at: float | None = None

    @classmethod
    def from_json(cls, data: dict | None) -> DormantState:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


class DormantGuard:
    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], float] = time.time,
        failed_recoveries_limit: int = 10,
        backoff: Backoff = RECOVERY_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.clock = store, clock
        self.limit, self.backoff, self.rng = failed_recoveries_limit, backoff, rng or random.Random()

    def state(self) -> DormantState:
        return DormantState.from_json(self.store.get(STORE_NAME))

    def decide(self, breakers: Iterable[tuple[str, State]] = ()) -> Decision:
        """May an automatic run start now? Enters dormant mode if a breaker is PERMANENT_OPEN."""
        permanent = sorted(name for name, state in breakers if State(state) is State.PERMANENT_OPEN)
        if permanent:
            self.enter(f"circuit breaker PERMANENT_OPEN: {', '.join(permanent)}")
        current = self.state()
        if current.dormant:
            return Decision(False, f"dormant since epoch {current.since:.0f}: {current.reason}; "
                                   "a person must resume with a reason")
        if current.next_attempt_at is not None and self.clock() < current.next_attempt_at:
            return Decision(False, f"backing off after {current.consecutive_failed_recoveries} failed "
                                   f"recoveries: next attempt after epoch {current.next_attempt_at:.0f}")
        return Decision(True, "ok")

    def record_recovery(self, succeeded: bool, detail: str = "") -> DormantState:
        def change(data: dict | None) -> dict:
            current, now = DormantState.from_json(data), self.clock()
            if succeeded:
                return asdict(replace(current, consecutive_failed_recoveries=0, next_attempt_at=None))
            failures = current.consecutive_failed_recoveries + 1
            updated = replace(
                current,
                consecutive_failed_recoveries=failures,
                next_attempt_at=now + self.backoff.delay(failures - 1, self.rng),
            )
            if failures >= self.limit and not current.dormant:
                updated = replace(updated, dormant=True, since=now,
                                  reason=f"{failures} consecutive failed recoveries (last: {detail or 'no detail'})")
            return asdict(updated)

        return DormantState.from_json(self.store.update(STORE_NAME, change))

    def enter(self, reason: str, by: str = AUTOMATIC) -> DormantState:
        def change(data: dict | None) -> dict:
            current = DormantState.from_json(data)
            if current.dormant:
                return asdict(current)
            return asdict(replace(current, dormant=True, since=self.clock(), reason=f"{reason} (by {by})"))

        return DormantState.from_json(self.store.update(STORE_NAME, change))

    def resume(self, by: str, reason: str) -> DormantState:
        """A person ends dormant mode. Reset PERMANENT_OPEN breakers first, or the next
        `decide()` goes dormant again."""
        if not by.strip() or by == AUTOMATIC:
            raise ValueError("resuming needs the name of the person doing it")
        if not reason.strip():
            raise ValueError("resuming needs a reason")

        def change(data: dict | None) -> dict:
            current = DormantState.from_json(data)
            return asdict(replace(current, dormant=False, consecutive_failed_recoveries=0, next_attempt_at=None,
                                  resumed_by=by, resumed_reason=reason, resumed_at=self.clock()))

        return DormantState.from_json(self.store.update(STORE_NAME, change))
