"""What `collector_heartbeat_sensor` decides at one evaluation: pure logic, a fixed clock in tests.

Inputs: now, each collector's latest beat, the lifecycle events since the cursor (restarts with
the last activity before them), the kill switches, the governance verdict (dormant / backoff /
breaker) and due retries. Output: runs to launch, the new cursor, and why nothing was launched.

Rules:
- A collector is *down* once its last beat is older than `stale_intervals` heartbeat intervals,
  or when a restart shows a hole (UP after the last activity before it). Only trading time is
  lost time (`KrxCalendar.trading_windows`): an outage at night or on a holiday costs nothing.
- While it is down during the session, the closed part [last recovered point, now) is launched at
  once, then again every `partial_every` (so every closed minute is recovered within 5 minutes,
  from today's minute-bar endpoint); the rest goes when the collector is back, through the end of
  the minute it came back in, once that minute has closed (`through_the_minute`).
- Windows wait in the cursor's `pending` list and launch only in trading time, with automatic
  recovery on, the governance allowing it and the breaker not OPEN. Nothing is dropped: windows
  found at night, while switched off or dormant, launch at the next chance (run keys dedupe).
- In the pre-open window (08:30-09:00) a restart or a stale collector only asks for a pre-flight.
- A beat more than `clock_tolerance` ahead of now was stamped on another timeline (a collector on
  an accelerated exchange clock, the automation at 1x): its age cannot be judged, so it is named
  in `warnings` (and the skip reason), never silently taken as fresh.
- Run keys: ``recovery:<collector>:<YYYYMMDD>:<HHMMSS>-<HHMMSS>:a<attempt>``; the same window and
  attempt always give the same key (Dagster drops a repeated key), a retry is attempt + 1.
- Waiting windows of one collector and day merge into one run (each run recovers the whole day);
  the run carries the lost spans themselves (`Window.spans`), not their hull, so it asks the
  broker only for the lost minutes. Its key names the hull.
- More than `burst` new windows at once (10 collectors killed together) are spread over
  `spread_s` with a deterministic jitter, and at most `max_launches` go out per evaluation.

The windows and their run keys are `recovery_window`; the cursor the sensor keeps between
evaluations is `heartbeat_cursor`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from stock_pipelines.market import SEOUL, KrxCalendar, krx_calendar
from stock_pipelines.market.calendar import Phase
from stock_pipelines.ops.heartbeat_cursor import LAUNCHED_KEPT, CollectorState, CursorState
from stock_pipelines.ops.recovery_window import Window, lost_windows, through_the_minute
from stock_pipelines.recovery.plan import union


@dataclass(frozen=True)
class RulesConfig:
    stale_intervals: float = 3.0  # beats missed before a collector counts as down
    partial_every: timedelta = timedelta(minutes=4)  # recover the closed part this often (< 5 min)
    burst: int = 2  # new windows launched without jitter in one evaluation
    spread_s: float = 30.0  # beyond the burst, launches are spread over this many seconds
    max_launches: int = 4  # run requests per evaluation at most
    min_gap: timedelta = timedelta(seconds=10)  # a shorter hole is within the heartbeat merge tolerance
    forget_after: timedelta = timedelta(days=4)  # a collector silent longer was retired, not lost
    minute_settle: timedelta = timedelta(seconds=5)  # after a minute closes, its broker bar is final
    # a beat further ahead of now comes from another timeline (an accelerated exchange clock):
    # its age cannot be judged, so it is reported, not trusted
    clock_tolerance: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Beat:
    """A collector's latest heartbeat (`HeartbeatStore.latest`)."""

    collector: str
    at: datetime
    interval_s: float = 5.0
    status: str = "ok"


@dataclass(frozen=True)
class Restart:
    """An UP event, with the end of the collector's last activity before it (None: unknown)."""

    event_id: str
    collector: str
    at: datetime
    previous_activity: datetime | None


@dataclass(frozen=True)
class Switches:
    monitoring: bool = True
    auto_recovery: bool = True
    preflight: bool = True
    detail: str = ""  # which source turned a switch off, for the skip reason


@dataclass(frozen=True)
class Governance:
    allowed: bool = True  # DormantGuard.decide()
    reason: str = "ok"
    breaker_state: str = "CLOSED"
    breaker_retry_at: datetime | None = None


@dataclass(frozen=True)
class Launch:
    kind: str  # "recovery" | "preflight"
    run_key: str
    collector: str
    reason: str
    window: Window | None = None


@dataclass
class Evaluation:
    launches: list[Launch]
    cursor: str
    skip_reason: str | None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the sensor logs these as warnings


def _iso(at: datetime) -> str:
    return at.astimezone(SEOUL).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _jitter(run_key: str, spread_s: float) -> float:
    """Deterministic in [0, spread_s): the same window gets the same delay at every evaluation."""
    digest = hashlib.sha256(run_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * spread_s


def evaluate(
    now: datetime,
    beats: list[Beat],
    restarts: list[Restart],
    stream_cursor: str,
    switches: Switches,
    governance: Governance,
    cursor: str | None,
    retries: list[Window] = (),
    config: RulesConfig = RulesConfig(),
    calendar: KrxCalendar | None = None,
) -> Evaluation:
    """One evaluation. `stream_cursor` is the event-stream id after `restarts` (the new position)."""
    calendar = calendar or krx_calendar()
    now = now.astimezone(SEOUL)
    state = CursorState.loads(cursor)
    if not switches.monitoring:
        # The cursor stays put: the events are read again once monitoring is back on.
        return Evaluation(
            [],
            state.dumps(),
            f"heartbeat monitoring is off ({switches.detail or 'kill switch'}): "
            "nothing read, nothing launched",
        )
    phase = calendar.phase(now)
    notes: list[str] = []
    preflights: list[Launch] = []
    new_windows: list[Window] = []

    def want_preflight(collector: str, at: datetime, what: str) -> None:
        if switches.preflight:
            preflights.append(
                Launch(
                    "preflight",
                    f"preflight:{collector}:{what}:{at.astimezone(SEOUL):%Y%m%dT%H%M%S}",
                    collector,
                    f"{collector} {what} in the pre-open window",
                )
            )
        else:
            notes.append(f"pre-flight for {collector} skipped: pre-flight is switched off")

    # 1. restarts: the hole between the last activity and the new start
    for restart in restarts:
        own = state.collectors.setdefault(restart.collector, CollectorState())
        known_end = _dt(own.recovered_until) or _dt(own.down_since)
        start = restart.previous_activity
        if known_end is not None:
            # Known down: the part before was handed over; the rest up to the restart is lost,
            # whatever the history says (a later "previous activity" may be the new process's).
            start = known_end
        if start is not None and restart.at - start > config.min_gap:
            windows = through_the_minute(
                lost_windows(restart.collector, start, restart.at, "restart after downtime", calendar),
                config.minute_settle,
            )
            new_windows += windows
            if not windows:
                notes.append(f"{restart.collector} restarted; no trading time lost")
        if calendar.phase(restart.at) is Phase.PRE_OPEN:
            want_preflight(restart.collector, restart.at, "restart")
        own.down_since, own.recovered_until = None, None
        own.last_beat = _iso(max(restart.at, _dt(own.last_beat) or restart.at))

    # 2. latest beats: going stale, partial recovery while down, coming back without an UP
    warnings = [clock_mismatch(beat, now) for beat in beats if beat.at - now > config.clock_tolerance]
    for beat in beats:
        if now - beat.at > config.forget_after:
            state.collectors.pop(beat.collector, None)
            continue
        own = state.collectors.setdefault(beat.collector, CollectorState())
        stale_after = timedelta(seconds=beat.interval_s * config.stale_intervals)
        down_since = _dt(own.down_since)
        if now - beat.at > stale_after:
            if down_since is None or beat.at > down_since:
                down_since = beat.at
                own.down_since, own.recovered_until = _iso(beat.at), _iso(beat.at)
                notes.append(f"{beat.collector} stale since {beat.at.astimezone(SEOUL):%H:%M:%S}")
                if phase is Phase.PRE_OPEN:
                    want_preflight(beat.collector, beat.at, "stale")
            recovered = _dt(own.recovered_until) or down_since
            first = recovered == down_since
            if phase in (Phase.CONTINUOUS, Phase.CLOSING_AUCTION) and (
                first or now - recovered >= config.partial_every
            ):
                windows = lost_windows(
                    beat.collector, recovered, now, "closed part of an ongoing outage", calendar
                )
                if windows:
                    new_windows += windows
                    own.recovered_until = _iso(now)
        elif down_since is not None:
            # beating again, with no UP event seen (a Redis blip, a frozen process): the rest
            start = _dt(own.recovered_until) or down_since
            new_windows += through_the_minute(
                lost_windows(beat.collector, start, beat.at, "collector back", calendar), config.minute_settle
            )
            own.down_since, own.recovered_until = None, None
        own.last_beat = _iso(beat.at)

    # 3. queue: new windows (jitter beyond the burst) and due retries, deduplicated by run key
    queued = {w.run_key for w in state.pending} | set(state.launched)
    fresh = 0
    for window in sorted(new_windows, key=lambda w: w.run_key):
        if window.run_key in queued:
            continue
        # One run recovers the whole day, so windows of one collector and day that are still
        # waiting become one run (the key names the hull; the run asks only for the spans).
        same = next(
            (
                w
                for w in state.pending
                if (w.collector, w.day, w.attempt) == (window.collector, window.day, window.attempt)
            ),
            None,
        )
        if same is not None:
            state.pending.remove(same)
            queued.discard(same.run_key)
            why = same.why if window.why in same.why else f"{same.why}; {window.why}"
            window = Window(
                window.collector,
                window.day,
                min(same.start, window.start),
                max(same.end, window.end),
                window.attempt,
                _latest(same.not_before, window.not_before),
                why,
                tuple(union(list(same.pieces + window.pieces))),
            )
        else:
            delay = 0.0 if fresh < config.burst else _jitter(window.run_key, config.spread_s)
            window = replace(window, not_before=_latest(now + timedelta(seconds=delay), window.not_before))
            fresh += 1
        state.pending.append(window)
        queued.add(window.run_key)
    for retry in retries:
        if retry.run_key not in queued:
            state.pending.append(retry)
            queued.add(retry.run_key)
    state.stream = stream_cursor

    # 4. launch what may go now
    launches: list[Launch] = list(preflights)
    hold = _hold_reason(phase, switches, governance, now)
    if state.pending and hold is None:
        due = [w for w in state.pending if w.not_before is None or w.not_before <= now]
        due.sort(key=lambda w: (w.not_before or now, w.run_key))
        if governance.breaker_state == "HALF_OPEN":
            due = due[:1]  # the breaker allows one trial call: one run makes it
        for window in due[: config.max_launches]:
            launches.append(
                Launch(
                    "recovery",
                    window.run_key,
                    window.collector,
                    f"{window.why}: "
                    + ", ".join(f"{start:%H:%M:%S}-{end:%H:%M:%S}" for start, end in window.pieces)
                    + f" on {window.day}",
                    window,
                )
            )
            state.launched.append(window.run_key)
            state.pending.remove(window)
        waiting = len(state.pending)
        if waiting:
            notes.append(f"{waiting} window(s) waiting (jitter or per-evaluation limit)")
    state.launched = state.launched[-LAUNCHED_KEPT:]

    skip = None
    if not launches:
        down = sorted(name for name, own in state.collectors.items() if own.down_since)
        if state.pending and hold is not None:
            skip = f"{hold}: {len(state.pending)} recovery window(s) held"
        elif notes:
            skip = "; ".join(notes)
        elif down:
            skip = "still down, recovery handed over up to the last launch: " + ", ".join(
                f"{name} since {_dt(state.collectors[name].down_since):%H:%M:%S}" for name in down
            )
        elif not warnings:
            skip = "all collectors healthy"
        skip = "; ".join([*warnings, *([skip] if skip else [])])
    return Evaluation(launches, state.dumps(), skip, notes, warnings)


def clock_mismatch(beat: Beat, now: datetime) -> str:
    ahead = (beat.at - now).total_seconds()
    return (
        f"{beat.collector}'s last heartbeat ({_iso(beat.at)}) is {ahead:.0f} s ahead of the project clock "
        f"({_iso(now)}): the collector and the automation run on different timelines, so it cannot be "
        "called stale; give the automation the exchange clock's speed (STOCK_PIPELINES_FAKE_NOW=ISO@epoch*speed)"
    )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def _hold_reason(phase: Phase, switches: Switches, governance: Governance, now: datetime) -> str | None:
    if phase not in (Phase.CONTINUOUS, Phase.CLOSING_AUCTION):
        return f"outside trading time ({phase.value} at {now:%Y-%m-%d %H:%M:%S} KST)"
    if not switches.auto_recovery:
        return f"automatic recovery is off ({switches.detail or 'kill switch'})"
    if not governance.allowed:
        return governance.reason
    if governance.breaker_state == "OPEN":
        until = f" until {governance.breaker_retry_at:%H:%M:%S}" if governance.breaker_retry_at else ""
        return f"circuit breaker OPEN{until}"
    if governance.breaker_state == "PERMANENT_OPEN":
        return "circuit breaker PERMANENT_OPEN: a person must reset it"
    return None
