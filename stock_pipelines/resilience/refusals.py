"""When a broker's credentials were refused, read from its circuit breaker's history.

A refusal begins when the breaker goes PERMANENT_OPEN on an authorization failure (the broker
refused the key or token) or on the pre-flight's missing key, and ends when a person resets it
(`stock-pipelines resume`, or `resume_automation_job`): the history entry PERMANENT_OPEN ->
CLOSED, with who and when. Times are the breaker's (epoch seconds, wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass

from stock_pipelines.resilience.breaker import AUTOMATIC, Snapshot, State

# the reasons CircuitBreaker.record_failure and the pre-flight's trip_permanently write
REFUSAL_REASONS = ("authorization failure", "pre-flight:")


@dataclass(frozen=True)
class Refusal:
    refused_at: float
    reason: str
    resumed_at: float | None = None  # None: still refused
    resumed_by: str = ""

    def covers(self, started_at: float, ended_at: float) -> bool:
        """Did [started_at, ended_at] overlap the refusal (up to the resume, or now)?"""
        return ended_at >= self.refused_at and (self.resumed_at is None or started_at <= self.resumed_at)


def latest_refusal(snapshot: Snapshot) -> Refusal | None:
    """The last credentials refusal in the breaker's history, resumed or not."""
    latest: Refusal | None = None
    for entry in snapshot.history:
        if entry["to"] == State.PERMANENT_OPEN.value and entry["reason"].startswith(REFUSAL_REASONS):
            latest = Refusal(refused_at=entry["at"], reason=entry["reason"])
        elif (
            latest is not None
            and latest.resumed_at is None
            and entry["from"] == State.PERMANENT_OPEN.value
            and entry["to"] == State.CLOSED.value
            and entry["by"] != AUTOMATIC
        ):
            latest = Refusal(latest.refused_at, latest.reason, resumed_at=entry["at"], resumed_by=entry["by"])
    return latest
