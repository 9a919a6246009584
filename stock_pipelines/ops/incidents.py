"""What is wrong right now, as incidents: pure rules from observed state to open conditions.

An incident is a (kind, subject) pair: `collector_down` of collector c1, `breaker_open` of broker
kis. Each source is turned into an `Observation`: the complete set of subjects of one kind that
are in trouble now, with a message each. A subject of an observed kind that is no longer listed
is resolved; a kind that was not observed this time (its source could not be read) keeps its
incidents as they are, so an unreadable source never resolves anything by accident.

Kinds and when they are open:
- collector_down: the latest beat is older than `stale_intervals` heartbeat intervals (the
  heartbeat sensor's rule), unless the collector said it was stopping (a graceful stop is not
  an outage). A collector silent longer than `forget_after` is retired: its incident resolves.
- collector_stalled: beating and connected, but its own status says the feed went quiet
  (STALLED); a collector idle outside the trading window has no feed to stall.
- disk_low: the collector's status hash says its writer is below the disk floor.
- archive_stale: the latest `tick_archive_fresh` check evaluation of today failed.
- breaker_open: a broker's breaker is OPEN or HALF_OPEN (one incident until it closes).
- breaker_permanent_open: PERMANENT_OPEN; only a person's `resume` closes it.
- dormant: automatic recovery is in dormant mode.
- preflight_failed: the latest pre-flight failed; the next one that passes resolves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from stock_pipelines.market import SEOUL

COLLECTOR_DOWN = "collector_down"
COLLECTOR_STALLED = "collector_stalled"
DISK_LOW = "disk_low"
ARCHIVE_STALE = "archive_stale"
BREAKER_OPEN = "breaker_open"
BREAKER_PERMANENT_OPEN = "breaker_permanent_open"
DORMANT = "dormant"
PREFLIGHT_FAILED = "preflight_failed"
KINDS = (
    COLLECTOR_DOWN,
    COLLECTOR_STALLED,
    DISK_LOW,
    ARCHIVE_STALE,
    BREAKER_OPEN,
    BREAKER_PERMANENT_OPEN,
    DORMANT,
    PREFLIGHT_FAILED,
)


@dataclass(frozen=True)
class Observation:
    """Every subject of `kind` in trouble now (subject -> message)."""

    kind: str
    active: Mapping[str, str]


@dataclass(frozen=True)
class CollectorView:
    """One collector as the incident rules see it: its latest beat and its status hash."""

    collector: str
    beat_at: datetime | None
    interval_s: float = 5.0
    beat_status: str = "ok"
    disk_low: bool | None = None  # None: the collector does not report it
    state: str | None = None  # its status hash's state (connected, idle ...); None: not reported


@dataclass(frozen=True)
class Transitions:
    to_open: list[tuple[str, str, str]]  # (kind, subject, message)
    to_resolve: list[tuple[str, str]]


def collector_observations(
    now: datetime,
    collectors: Iterable[CollectorView],
    stale_intervals: float = 3.0,
    forget_after: timedelta = timedelta(days=4),
) -> list[Observation]:
    down: dict[str, str] = {}
    stalled: dict[str, str] = {}
    disk: dict[str, str] = {}
    for view in collectors:
        if view.disk_low:
            disk[view.collector] = f"collector {view.collector}: archive writer below its disk floor, refusing trades"
        if view.beat_at is None or now - view.beat_at > forget_after:
            continue
        age = (now - view.beat_at).total_seconds()
        if age > view.interval_s * stale_intervals:
            if view.beat_status != "stopping":
                down[view.collector] = (
                    f"collector {view.collector}: no heartbeat for {age:.0f} s "
                    f"(last at {view.beat_at.astimezone(SEOUL):%Y-%m-%d %H:%M:%S} KST, status {view.beat_status})"
                )
        elif view.beat_status == "stalled" and view.state != "idle":
            stalled[view.collector] = f"collector {view.collector}: connected but its feed went quiet (STALLED)"
    return [Observation(COLLECTOR_DOWN, down), Observation(COLLECTOR_STALLED, stalled), Observation(DISK_LOW, disk)]


def breaker_observations(states: Mapping[str, tuple[str, str]]) -> list[Observation]:
    """`states`: broker -> (breaker state, reason)."""
    opened = {b: f"broker {b}: circuit breaker {s}: {r}" for b, (s, r) in states.items() if s in ("OPEN", "HALF_OPEN")}
    permanent = {
        b: f"broker {b}: circuit breaker PERMANENT_OPEN: {r}. A person must run `stock-pipelines resume`."
        for b, (s, r) in states.items()
        if s == "PERMANENT_OPEN"
    }
    return [Observation(BREAKER_OPEN, opened), Observation(BREAKER_PERMANENT_OPEN, permanent)]


def dormant_observation(dormant: bool, reason: str) -> Observation:
    message = (
        f"automatic recovery stopped: {reason}. Run `stock-pipelines resume --reason ...` once fixed."
    )
    return Observation(DORMANT, {"automation": message} if dormant else {})


def freshness_observation(passed: bool, description: str, day: str) -> Observation:
    return Observation(ARCHIVE_STALE, {} if passed else {"tick_archive": f"{day}: {description}"})


def preflight_observation(last: Mapping | None) -> Observation | None:
    """`last`: the latest pre-flight's record (`ok`, `summary`); None: none ran yet (not observed)."""
    if last is None:
        return None
    return Observation(PREFLIGHT_FAILED, {} if last.get("ok") else {"preflight": str(last.get("summary", ""))})


def transitions(open_now: Iterable[tuple[str, str]], observations: Iterable[Observation]) -> Transitions:
    """What to open and what to resolve, given the open (kind, subject) pairs."""
    open_set = set(open_now)
    to_open: list[tuple[str, str, str]] = []
    to_resolve: list[tuple[str, str]] = []
    for observation in observations:
        for subject, message in sorted(observation.active.items()):
            if (observation.kind, subject) not in open_set:
                to_open.append((observation.kind, subject, message))
        to_resolve += sorted(
            (kind, subject)
            for kind, subject in open_set
            if kind == observation.kind and subject not in observation.active
        )
    return Transitions(to_open, to_resolve)
