"""One evaluation of the heartbeat sensor against Redis: gather the inputs, call the rules.

Reads the kill switches (every time, never cached), the collectors' latest beats, the lifecycle
events after the cursor's stream position (a restart's previous activity comes from the
up-intervals the heartbeat store keeps per day, before the new process's first beat), the governance verdict and queued retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import redis

from stock_pipelines.heartbeat.model import BEATS_FROM_KEY, EventRecord, LifecycleEvent, from_us
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.heartbeat_cursor import CursorState
from stock_pipelines.ops.heartbeat_rules import (
    Beat,
    Evaluation,
    Governance,
    Restart,
    RulesConfig,
    Switches,
    evaluate,
)
from stock_pipelines.resilience.flags import AUTO_RECOVERY, HEARTBEAT_MONITORING, PREFLIGHT, FeatureFlags

LOOKBACK_DAYS = 5  # how far back a restart looks for the collector's last activity (a long weekend)


def read_switches(flags: FeatureFlags) -> Switches:
    states = {name: flags.state(name) for name in (HEARTBEAT_MONITORING, AUTO_RECOVERY, PREFLIGHT)}
    off = [f"{s.name} off via {s.source}" for s in states.values() if not s.enabled]
    return Switches(
        monitoring=states[HEARTBEAT_MONITORING].enabled,
        auto_recovery=states[AUTO_RECOVERY].enabled,
        preflight=states[PREFLIGHT].enabled,
        detail="; ".join(off),
    )


def previous_activity(
    store: HeartbeatStore, collector: str, at: datetime, beats_from: datetime | None = None
) -> datetime | None:
    """The end of the previous process's activity before the process that announced itself (UP) at `at`.

    A collector back-dates its beats (a beat vouches only for what is already archived), so its
    first beat can be stamped before its own UP event; its up-interval then begins before `at`
    and would pass for the previous process's activity, making the hole look like zero. The UP
    event names `beats_from`, the earliest instant its beats carry: only history before that
    belongs to earlier processes.
    """
    cut = at if beats_from is None else min(at, beats_from)
    local = cut.astimezone(SEOUL)
    for back in range(LOOKBACK_DAYS + 1):
        day = (local - timedelta(days=back)).date()
        earlier = [iv for iv in store.up_intervals(collector, day) if iv.start < cut]
        if earlier:
            return min(max(iv.end for iv in earlier), cut)
    return None


def beats_from(event: EventRecord) -> datetime | None:
    """The earliest beat stamp an UP event announces (``beats_from_us`` in its detail), if any."""
    value = event.detail.get(BEATS_FROM_KEY)
    return None if value is None else from_us(int(value))


def heartbeat_tick(
    client: redis.Redis,
    now: datetime,
    cursor: str | None,
    config: RulesConfig | None = None,
    governance: RecoveryGovernance | None = None,
    broker: str | None = None,
) -> Evaluation:
    """`broker`: the deployment's, whose breaker governs the launches (unless `governance` is given)."""
    config = config or RulesConfig()
    switches = read_switches(FeatureFlags(client))
    previous = CursorState.loads(cursor)
    if not switches.monitoring:
        return evaluate(now, [], [], previous.stream, switches, Governance(), cursor, config=config)
    store = HeartbeatStore(client, clock=lambda: now)
    events, stream = store.read_events(after=previous.stream)
    restarts = [
        Restart(e.id, e.collector, e.at, previous_activity(store, e.collector, e.at, beats_from(e)))
        for e in events
        if e.event is LifecycleEvent.UP
    ]
    beats = []
    for name in store.collectors():
        latest = store.latest(name)
        if latest is not None:
            beats.append(Beat(name, latest.at, latest.interval_s, latest.status.value))
    governance = governance or RecoveryGovernance(client, broker)
    verdict = governance.verdict()
    retries = governance.due_retries()
    # retries launched by an earlier, committed evaluation are done with
    governance.forget_retries([w.run_key for w in retries if w.run_key in previous.launched])
    retries = [w for w in retries if w.run_key not in previous.launched]
    return evaluate(now, beats, restarts, stream, switches, verdict, cursor, retries=retries, config=config)
