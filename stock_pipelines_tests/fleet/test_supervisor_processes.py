"""The supervisor's loop with real child processes that stand in for collectors (a few lines of
Python that print a start line and sleep): ten children SIGKILLed together come back spread over
the backoff window, not in one burst; a stop signal reaches every child, and one that ignores it
is SIGKILLed after the stop timeout; in dormant mode a crashed child waits the backoff cap."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sys
import threading
import time

import pytest

from stock_pipelines.fleet.gate import FleetGate
from stock_pipelines.fleet.policy import RestartPolicy
from stock_pipelines.fleet.status import health_problems, read_status
from stock_pipelines.fleet.supervisor import Member, Supervisor
from stock_pipelines.resilience.backoff import Backoff
from stock_pipelines.resilience.dormant import DormantGuard
from stock_pipelines.resilience.flags import COLLECTORS
from stock_pipelines.resilience.state_store import RedisStateStore
from stock_pipelines_tests.fleet.fleet_process import pid_alive
from stock_pipelines_tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

BASE_S = 2.0
CHILD = """
import json, os, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(json.dumps({"collector": sys.argv[1], "pid": os.getpid()}), flush=True)
time.sleep(120)
"""


class Events(io.StringIO):
    def lines(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.getvalue().splitlines()) if e["event"] == name]


def _supervisor(tmp_path, names: list[str], stubborn: str | None = None, stop_timeout_s: float = 10.0,
                redis_client=None):
    def argv(name: str) -> list[str]:
        return [sys.executable, "-c", CHILD, name, "stubborn" if name == stubborn else "polite"]

    members = [Member(n, "kis", 1, argv(n), dict(os.environ)) for n in names]
    policy = RestartPolicy(Backoff(BASE_S, 8.0), Backoff(60.0, 600.0), stable_after_s=60.0)

    def no_redis():
        raise ConnectionError("no Redis in this test")

    events = Events()
    gate = FleetGate(no_redis if redis_client is None else lambda: redis_client)
    supervisor = Supervisor(members, policy, gate, tmp_path / "status.json", events=events,
                            child_log=io.StringIO(), stop_timeout_s=stop_timeout_s, switch_poll_s=0.5,
                            rng=random.Random(11))
    return supervisor, events


def _running_pids(supervisor: Supervisor) -> dict[str, int]:
    return {m.id: m.child.pid for m in supervisor.members if m.child is not None}


def test_ten_children_killed_at_once_restart_spread_over_the_window(tmp_path):
    names = [f"c{i}" for i in range(10)]
    supervisor, events = _supervisor(tmp_path, names)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        wait_until(lambda: len(events.lines("collector_started")) == 10, 20, "ten children started")
        wait_until(lambda: all(m.child.started_line for m in supervisor.members), 20, "ten start lines")
        first = _running_pids(supervisor)
        for pid in first.values():
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(events.lines("collector_restarted")) == 10, 20, "ten restarts")
        exited = {e["collector"]: e["epoch"] for e in events.lines("collector_exited")}
        restarted = {e["collector"]: e["epoch"] for e in events.lines("collector_restarted")}
        planned = {e["collector"]: e["delay_s"] for e in events.lines("restart_scheduled")}
        delays = sorted(planned[n] for n in names)
        assert all(0 <= d <= BASE_S for d in delays), delays  # within the first restart's window ...
        assert delays[-1] - delays[0] > BASE_S / 2, delays  # ... spread over it ...
        assert max(sum(1 for d in delays if t <= d < t + 0.2) for t in delays) <= 4, delays  # ... no burst
        # each restart waited its own delay, never less; how much later it came depends on the
        # machine's load (a process start), so only a generous bound holds on a shared machine
        late = {n: (restarted[n] - exited[n]) - planned[n] for n in names}
        assert all(-0.05 <= s <= 5.0 for s in late.values()), late
        assert not any(pid_alive(pid) for pid in first.values())
        status = read_status(tmp_path / "status.json")
        wait_until(lambda: all(c["state"] == "running" for c in read_status(tmp_path / "status.json")
                               ["collectors"].values()), 5, "the status file showing them running again")
        assert status["collectors"]["c3"]["last_exit_reason"] == "crashed (killed by SIGKILL)"
    finally:
        second = _running_pids(supervisor)
        supervisor.request_stop(signal.SIGTERM)
        loop.join(20)
    assert not loop.is_alive() and len(second) == 10
    assert not any(pid_alive(pid) for pid in second.values())


def test_stop_signal_reaches_every_child_and_a_stubborn_one_is_killed_after_the_timeout(tmp_path):
    supervisor, events = _supervisor(tmp_path, ["polite", "stubborn"], stubborn="stubborn",
                                     stop_timeout_s=1.5)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    wait_until(lambda: all(m.child and m.child.started_line for m in supervisor.members), 20, "both started")
    pids = _running_pids(supervisor)
    asked = time.monotonic()
    supervisor.request_stop(signal.SIGTERM)
    loop.join(20)
    took = time.monotonic() - asked
    assert not loop.is_alive() and 1.5 <= took <= 5, took
    assert not any(pid_alive(pid) for pid in pids.values())
    exits = {e["collector"]: e for e in events.lines("collector_exited")}
    assert exits["polite"]["code"] == -signal.SIGTERM and exits["stubborn"]["code"] == -signal.SIGKILL
    assert {e["kind"] for e in exits.values()} == {"stopped"}
    killed, = events.lines("collector_killed")
    assert killed["collector"] == "stubborn"
    assert killed["reason"] == "still running 1.5 s after the stop signal"
    final = read_status(tmp_path / "status.json")
    assert final["supervisor"]["state"] == "stopped"
    assert {c["state"] for c in final["collectors"].values()} == {"stopped"}
    assert health_problems(final, time.time()) == ["the supervisor has stopped"]


def test_in_dormant_mode_a_crashed_child_waits_the_backoff_cap(tmp_path, redis_server, monkeypatch):
    monkeypatch.delenv(COLLECTORS, raising=False)
    client = redis_server.client()
    supervisor, events = _supervisor(tmp_path, ["d1"], redis_client=client)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        member = supervisor.members[0]
        wait_until(lambda: member.child and member.child.started_line, 20, "the child started")
        DormantGuard(RedisStateStore(client)).enter("breaker PERMANENT_OPEN")
        entered = wait_until(lambda: events.lines("dormant_entered"), 5, "the supervisor seeing dormant mode")
        assert entered[0]["reason"] == "breaker PERMANENT_OPEN (by automatic)"
        os.kill(member.child.pid, signal.SIGKILL)
        scheduled = wait_until(lambda: events.lines("restart_scheduled"), 5, "the restart scheduled")[0]
        assert scheduled["delay_s"] == 8.0  # the cap, not uniform(0, 2): no churn while dormant
        status = wait_until(lambda: (c := read_status(tmp_path / "status.json")["collectors"]["d1"])
                            ["state"] == "backoff" and c, 5, "the status file showing the backoff")
        assert "dormant mode" in status["last_exit_reason"] and status["next_restart_in_s"] > 6
        assert read_status(tmp_path / "status.json")["dormant"] is True
    finally:
        supervisor.request_stop(signal.SIGTERM)
        loop.join(20)
    assert not loop.is_alive() and events.lines("collector_restarted") == []
