"""The fleet supervisor: starts every collector of the fleet file as a child process running
the real `collector run`, restarts the ones that exit (fleet/policy.py decides how), follows
the kill switch and dormant mode (fleet/gate.py), and stops the children gracefully on request.

One thread, one loop: wait up to `TICK_S` for child output (selectors), reap exits, start what
is due, re-read the gate every `switch_poll_s`, rewrite the status file. Every start, exit,
scheduled restart and switch change is one JSON line on `events` (stdout of `fleet run`).
Waits are wall seconds on the monotonic clock.
"""

from __future__ import annotations

import json
import random
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from stock_pipelines.fleet.child import Child
from stock_pipelines.fleet.gate import FleetGate, GateReading
from stock_pipelines.fleet.policy import Exit, ExitKind, RestartPolicy, State
from stock_pipelines.fleet.status import CollectorStatus, iso, status_document, write_status

TICK_S = 0.1
STATUS_EVERY_S = 1.0


@dataclass
class Member:
    id: str
    source: str
    symbols: int
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    state: State = State.PENDING
    child: Child | None = None
    started_mono: float = 0.0
    started_at: float | None = None
    restarts: int = 0
    crash_attempt: int = 0
    diagnosis_attempt: int = 0
    last_exit_code: int | None = None
    last_exit_reason: str | None = None
    last_exit_at: float | None = None
    due_mono: float | None = 0.0  # when to (re)start; None: not automatically
    stop_requested: bool = False
    metrics_url: str | None = None


class Supervisor:
    def __init__(self, members: list[Member], policy: RestartPolicy, gate: FleetGate, status_path,
                 events: IO[str], child_log: IO[str], stop_timeout_s: float, switch_poll_s: float,
                 rng: random.Random | None = None, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.members, self.policy, self.gate = members, policy, gate
        self.status_path, self.events, self.child_log = status_path, events, child_log
        self.stop_timeout_s, self.switch_poll_s = stop_timeout_s, switch_poll_s
        self.rng, self.wall, self.mono = rng or random.Random(), wall, mono
        self.selector = selectors.DefaultSelector()
        self.stop_signal: int | None = None
        self.stop_deadline: float | None = None
        self.reading = GateReading(True, "not read yet", False, "")
        self._next_gate = 0.0
        self._next_status = 0.0
        self.state = "running"

    # -- the loop ------------------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Signal-handler safe: only records the request; the loop acts on it."""
        if self.stop_signal is None:
            self.stop_signal = signum
        else:  # a second request: do not wait for the graceful stop any longer
            self.stop_deadline = 0.0

    def run(self) -> int:
        self.log("fleet_started", collectors=[m.id for m in self.members])
        while True:
            now = self.mono()
            if self.stop_signal is not None and self.state != "stopping":
                self._begin_stop(now)
            self._pump(TICK_S)
            self._reap()
            if self.state == "stopping":
                if not any(m.child for m in self.members):
                    break
                if now >= (self.stop_deadline or 0.0):
                    self._kill_remaining()
            else:
                if now >= self._next_gate:
                    self._apply_gate(self.gate.read())
                    self._next_gate = now + self.switch_poll_s
                self._start_due(now)
            if now >= self._next_status:
                self.write_status()
                self._next_status = now + STATUS_EVERY_S
        self.state = "stopped"
        self.write_status(durable=True)
        self.log("fleet_stopped", signal=signal.Signals(self.stop_signal).name if self.stop_signal else None)
        return 0

    # -- children ------------------------------------------------------------------------------

    def _start(self, member: Member, now: float) -> None:
        member.child = Child(member.id, member.argv, member.env, self.child_log)
        for stream, name in member.child.streams():
            self.selector.register(stream, selectors.EVENT_READ, (member, name))
        restart = member.started_at is not None
        member.restarts += int(restart)
        member.state, member.due_mono, member.stop_requested = State.RUNNING, None, False
        member.started_mono, member.started_at = now, self.wall()
        self.log("collector_restarted" if restart else "collector_started", collector=member.id,
                 pid=member.child.pid, restarts=member.restarts)
        self._next_status = 0.0

    def _pump(self, timeout: float) -> None:
        if not self.selector.get_map():
            time.sleep(timeout)
            return
        for key, _ in self.selector.select(timeout):
            member, name = key.data
            if not member.child.read(key.fileobj, name):
                self.selector.unregister(key.fileobj)

    def _reap(self) -> None:
        for member in self.members:
            if member.child is not None and (code := member.child.poll()) is not None:
                self._exited(member, code)

    def _exited(self, member: Member, code: int) -> None:
        child, now = member.child, self.mono()
        for stream, _ in child.streams():
            self.selector.unregister(stream)
        child.drain()
        child.close()
        member.child = None
        ran_s = now - member.started_mono
        ended = Exit(code, child.started_line is not None, member.stop_requested, ran_s)
        decision = self.policy.decide(ended, member.crash_attempt, member.diagnosis_attempt, self.rng,
                                      dormant=self.reading.dormant, detail="; ".join(child.problems))
        member.crash_attempt, member.diagnosis_attempt = decision.crash_attempt, decision.diagnosis_attempt
        member.last_exit_code, member.last_exit_at = code, self.wall()
        member.last_exit_reason = decision.reason
        self.log("collector_exited", collector=member.id, pid=child.pid, code=code, kind=decision.kind.value,
                 reason=decision.reason, ran_s=round(ran_s, 3))
        if decision.kind is ExitKind.STOPPED:
            member.state = State.DISABLED if self.reading.collectors_enabled is False else State.STOPPED
            member.due_mono = None
        else:
            member.state = decision.state
            member.due_mono = None if decision.delay_s is None else now + decision.delay_s
            delay = decision.delay_s
            crashed = decision.kind is ExitKind.CRASHED
            self.log("collector_failed" if decision.state is State.FAILED else "restart_scheduled",
                     collector=member.id, delay_s=None if delay is None else round(delay, 3),
                     restart_at=iso(None if delay is None else self.wall() + delay),
                     attempt=decision.crash_attempt if crashed else decision.diagnosis_attempt)
        self._next_status = 0.0

    def _start_due(self, now: float) -> None:
        if self.reading.collectors_enabled is False:
            return
        for member in self.members:
            if member.child is None and member.due_mono is not None and now >= member.due_mono:
                self._start(member, now)

    def _stop_children(self, signum: int) -> None:
        for member in self.members:
            if member.child is not None:
                member.stop_requested = True
                member.state = State.STOPPING
                member.child.signal(signum)

    def _begin_stop(self, now: float) -> None:
        self.state = "stopping"
        self.stop_deadline = now + self.stop_timeout_s if self.stop_deadline is None else self.stop_deadline
        self.log("fleet_stopping", signal=signal.Signals(self.stop_signal).name,
                 running=[m.id for m in self.members if m.child], timeout_s=self.stop_timeout_s)
        self._stop_children(self.stop_signal)
        for member in self.members:
            if member.child is None:
                member.state, member.due_mono = State.STOPPED, None
        self._next_status = 0.0

    def _kill_remaining(self) -> None:
        for member in self.members:
            if member.child is not None and member.child.poll() is None:
                self.log("collector_killed", collector=member.id, pid=member.child.pid,
                         reason=f"still running {self.stop_timeout_s} s after the stop signal")
                member.child.signal(signal.SIGKILL)
        self.stop_deadline = float("inf")  # killed once; the loop reaps them

    # -- governance ----------------------------------------------------------------------------

    def _apply_gate(self, reading: GateReading) -> None:
        before, self.reading = self.reading, reading
        if reading.collectors_enabled is False and before.collectors_enabled is not False:
            self.log("collectors_disabled", detail=reading.switch_detail,
                     stopping=[m.id for m in self.members if m.child])
            self._stop_children(signal.SIGTERM)
            for member in self.members:
                if member.child is None:
                    member.state = State.DISABLED
        elif reading.collectors_enabled is not False and before.collectors_enabled is False:
            self.log("collectors_enabled", detail=reading.switch_detail)
            now = self.mono()
            for member in self.members:
                if member.state in (State.DISABLED, State.STOPPING, State.STOPPED):
                    # spread over the first backoff window, as after a mass crash
                    member.state = State.PENDING
                    member.due_mono = now + self.policy.restart.delay(0, self.rng)
        if reading.dormant != before.dormant:
            self.log("dormant_entered" if reading.dormant else "dormant_left", reason=reading.dormant_reason)

    # -- reporting -----------------------------------------------------------------------------

    def log(self, event: str, **fields: object) -> None:
        now = self.wall()
        self.events.write(json.dumps({"at": iso(now), "epoch": round(now, 3), "event": event, **fields},
                                     ensure_ascii=False) + "\n")
        self.events.flush()

    def collector_statuses(self) -> list[CollectorStatus]:
        now_mono, now_wall = self.mono(), self.wall()
        statuses = []
        for m in self.members:
            due = None if m.due_mono is None or m.child is not None else max(0.0, m.due_mono - now_mono)
            statuses.append(CollectorStatus(
                id=m.id, source=m.source, symbols=m.symbols, metrics_url=m.metrics_url, state=m.state.value,
                pid=m.child.pid if m.child else None, restarts=m.restarts, started_at=iso(m.started_at),
                last_exit_code=m.last_exit_code, last_exit_reason=m.last_exit_reason,
                last_exit_at=iso(m.last_exit_at),
                next_restart_at=iso(now_wall + due) if due is not None else None,
                next_restart_in_s=round(due, 3) if due is not None else None))
        return statuses

    def write_status(self, durable: bool = False) -> None:
        document = status_document(self.collector_statuses(), self.state, self.reading.switch_detail,
                                   self.reading.dormant, self.wall())
        write_status(self.status_path, document, durable=durable)

