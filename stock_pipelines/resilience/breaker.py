"""A circuit breaker per broker, modelled on resilience4j's CircuitBreaker.

States and the only legal moves between them (anything else raises `IllegalTransition`):

    CLOSED ---3 consecutive failures---------------------------> OPEN
    CLOSED ---authorization failure / missing key / a person---> PERMANENT_OPEN
    OPEN -----60 s later, on the next permission request-------> HALF_OPEN (one trial call)
    OPEN -----authorization failure / a person-----------------> PERMANENT_OPEN
    HALF_OPEN -trial succeeds----------------------------------> CLOSED
    HALF_OPEN -trial fails-------------------------------------> OPEN
    HALF_OPEN -trial fails the 10th time in a row / auth fails-> PERMANENT_OPEN
    OPEN, HALF_OPEN, PERMANENT_OPEN --a person resets, with a reason--> CLOSED

PERMANENT_OPEN never closes by itself. Consecutive failures keep counting through OPEN and
HALF_OPEN (a failed trial is one more), so 10 failures in a row end in PERMANENT_OPEN.

State lives in a `StateStore` (Redis in production, memory in unit tests), so every worker
shares one breaker per broker and it survives daemon restarts. The clock is injectable and
gives epoch seconds (wall time, because the state outlives the process).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TypeVar

from stock_pipelines.resilience.errors import is_authorization_failure
from stock_pipelines.resilience.state_store import StateStore

T = TypeVar("T")
HISTORY_LENGTH = 20


class State(enum.StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    PERMANENT_OPEN = "PERMANENT_OPEN"


AUTOMATIC, MANUAL = "automatic", "manual"

# (from, to) -> who may make the move
TRANSITIONS: dict[tuple[State, State], frozenset[str]] = {
    (State.CLOSED, State.OPEN): frozenset({AUTOMATIC}),
    (State.CLOSED, State.PERMANENT_OPEN): frozenset({AUTOMATIC, MANUAL}),
    (State.OPEN, State.HALF_OPEN): frozenset({AUTOMATIC}),
    (State.OPEN, State.PERMANENT_OPEN): frozenset({AUTOMATIC, MANUAL}),
    (State.HALF_OPEN, State.CLOSED): frozenset({AUTOMATIC, MANUAL}),
    (State.HALF_OPEN, State.OPEN): frozenset({AUTOMATIC}),
    (State.HALF_OPEN, State.PERMANENT_OPEN): frozenset({AUTOMATIC, MANUAL}),
    (State.OPEN, State.CLOSED): frozenset({MANUAL}),
    (State.PERMANENT_OPEN, State.CLOSED): frozenset({MANUAL}),
}


class IllegalTransition(RuntimeError):
    pass


class CircuitOpenError(RuntimeError):
    """The breaker refused the call; `retry_at` (epoch s) says when a trial may run, if ever."""

    def __init__(self, name: str, state: State, retry_at: float | None) -> None:
        when = "only after a person resets it" if retry_at is None else f"not before epoch {retry_at:.0f}"
        super().__init__(f"circuit breaker {name!r} is {state.value}: calls refused, {when}")
        self.name, self.state, self.retry_at = name, state, retry_at


@dataclass(frozen=True)
class Snapshot:
    state: State = State.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None  # when it last went OPEN (epoch s)
    trial_started_at: float | None = None  # HALF_OPEN: the one trial in flight
    reason: str = ""
    changed_at: float | None = None
    changed_by: str = AUTOMATIC
    history: tuple[dict, ...] = field(default_factory=tuple)  # the last transitions, newest last

    def to_json(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_json(cls, data: dict | None) -> Snapshot:
        if not data:
            return cls()
        return cls(**{**data, "state": State(data["state"]), "history": tuple(data.get("history", ()))})


def check_transition(current: State, target: State, by: str) -> None:
    allowed = TRANSITIONS.get((current, target))
    if allowed is None or by not in allowed:
        raise IllegalTransition(f"{by} transition {current.value} -> {target.value} is not allowed")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        store: StateStore,
        clock: Callable[[], float] = time.time,
        failure_threshold: int = 3,
        permanent_threshold: int = 10,
        open_for: float = 60.0,
        trial_timeout: float | None = None,
        is_authorization: Callable[[BaseException], bool] = is_authorization_failure,
        counts_as_failure: Callable[[BaseException], bool] = lambda error: True,
    ) -> None:
        if not 0 < failure_threshold <= permanent_threshold:
            raise ValueError("need 0 < failure_threshold <= permanent_threshold")
        self.name, self.store, self.clock = name, store, clock
        self.failure_threshold, self.permanent_threshold = failure_threshold, permanent_threshold
        self.open_for = open_for
        # A trial whose worker died never reports back; after this long another one may start.
        self.trial_timeout = trial_timeout if trial_timeout is not None else open_for
        self.is_authorization, self.counts_as_failure = is_authorization, counts_as_failure

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot.from_json(self.store.get(self._store_name))

    @property
    def state(self) -> State:
        return self.snapshot().state

    def retry_at(self) -> float | None:
        snap = self.snapshot()
        if snap.state is State.OPEN and snap.opened_at is not None:
            return snap.opened_at + self.open_for
        if snap.state is State.HALF_OPEN and snap.trial_started_at is not None:
            return snap.trial_started_at + self.trial_timeout
        return None if snap.state is State.PERMANENT_OPEN else self.clock()

    # -- the call protocol -------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """May one call go out now? In HALF_OPEN only one trial at a time gets a yes."""
        granted = False

        def change(data: dict | None) -> dict:
            nonlocal granted
            snap, now = Snapshot.from_json(data), self.clock()
            if snap.state is State.CLOSED:
                granted = True
            elif snap.state is State.OPEN and snap.opened_at is not None and now - snap.opened_at >= self.open_for:
                snap = self._moved(snap, State.HALF_OPEN, AUTOMATIC, f"{self.open_for:g} s open: one trial call")
                snap = replace(snap, trial_started_at=now)
                granted = True
            elif snap.state is State.HALF_OPEN and (
                snap.trial_started_at is None or now - snap.trial_started_at >= self.trial_timeout
            ):
                snap = replace(snap, trial_started_at=now)
                granted = True
            return snap.to_json()

        self.store.update(self._store_name, change)
        return granted

    def record_success(self) -> State:
        def change(data: dict | None) -> dict:
            snap = Snapshot.from_json(data)
            if snap.state is State.HALF_OPEN:
                snap = self._moved(snap, State.CLOSED, AUTOMATIC, "trial call succeeded")
            if snap.state is State.CLOSED:
                snap = replace(snap, consecutive_failures=0)
            # OPEN / PERMANENT_OPEN: a call granted before the breaker opened; it changes nothing
            return snap.to_json()

        return State(self.store.update(self._store_name, change)["state"])

    def record_failure(self, error: BaseException | None = None, *, authorization: bool = False) -> State:
        authorization = authorization or (error is not None and self.is_authorization(error))
        described = f"{type(error).__name__}: {error}" if error is not None else "failure"

        def change(data: dict | None) -> dict:
            snap = Snapshot.from_json(data)
            if snap.state is State.PERMANENT_OPEN:
                return snap.to_json()
            failures = snap.consecutive_failures + 1
            snap = replace(snap, consecutive_failures=failures)
            if authorization:
                snap = self._moved(snap, State.PERMANENT_OPEN, AUTOMATIC, f"authorization failure ({described})")
            elif snap.state is State.OPEN:
                pass  # a late failure of a call granted before opening: counted, state unchanged
            elif failures >= self.permanent_threshold:
                snap = self._moved(snap, State.PERMANENT_OPEN, AUTOMATIC,
                                   f"{failures} consecutive failures, last {described}")
            elif snap.state is State.HALF_OPEN or failures >= self.failure_threshold:
                snap = self._moved(snap, State.OPEN, AUTOMATIC, f"{failures} consecutive failures, last {described}")
            return snap.to_json()

        return State(self.store.update(self._store_name, change)["state"])

    def call(self, function: Callable[..., T], *args, **kwargs) -> T:
        if not self.try_acquire():
            snap = self.snapshot()
            raise CircuitOpenError(self.name, snap.state, self.retry_at())
        try:
            result = function(*args, **kwargs)
        except Exception as error:
            if self.is_authorization(error) or self.counts_as_failure(error):
                self.record_failure(error)
            else:
                self.record_success()
            raise
        self.record_success()
        return result

    # -- people ------------------------------------------------------------------------------

    def reset(self, by: str, reason: str) -> Snapshot:
        """A person closes the breaker (the only way out of PERMANENT_OPEN)."""
        _require_person(by, reason)

        def change(data: dict | None) -> dict:
            snap = self._moved(Snapshot.from_json(data), State.CLOSED, MANUAL, reason, by)
            return replace(snap, consecutive_failures=0).to_json()

        return Snapshot.from_json(self.store.update(self._store_name, change))

    def trip_permanently(self, reason: str, by: str = AUTOMATIC) -> Snapshot:
        """E.g. the preflight found no API key: stop until a person fixes it and resets."""
        who = AUTOMATIC if by == AUTOMATIC else MANUAL

        def change(data: dict | None) -> dict:
            snap = Snapshot.from_json(data)
            if snap.state is State.PERMANENT_OPEN:
                return snap.to_json()
            return self._moved(snap, State.PERMANENT_OPEN, who, reason, by).to_json()

        return Snapshot.from_json(self.store.update(self._store_name, change))

    # -- internals ---------------------------------------------------------------------------

    @property
    def _store_name(self) -> str:
        return f"breaker:{self.name}"

    def _moved(self, snap: Snapshot, target: State, who: str, reason: str, by: str | None = None) -> Snapshot:
        check_transition(snap.state, target, who)
        now = self.clock()
        entry = {"from": snap.state.value, "to": target.value, "at": now, "by": by or who, "reason": reason}
        return replace(
            snap,
            state=target,
            opened_at=now if target is State.OPEN else (None if target is State.CLOSED else snap.opened_at),
            trial_started_at=None,
            reason=reason,
            changed_at=now,
            changed_by=by or who,
            history=(*snap.history, entry)[-HISTORY_LENGTH:],
        )


def _require_person(by: str, reason: str) -> None:
    if not by.strip() or by == AUTOMATIC:
        raise ValueError("a manual action needs the name of the person taking it")
    if not reason.strip():
        raise ValueError("a manual action needs a reason")
