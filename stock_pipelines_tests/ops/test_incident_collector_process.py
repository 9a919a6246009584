"""A real `stock-pipelines collector run` process against the simulator: SIGKILLed, it becomes one
`collector_down` alert however often the incidents are evaluated; restarted, one `resolved`. The
evaluation's "now" is the exchange clock the collector stamps its beats with."""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from stock_pipelines.collector.status import read_status
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.ops.alerts import WebhookSender
from stock_pipelines.ops.incident_tick import incident_tick
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.collector.conftest import DAY, admin, seoul
from stock_pipelines_tests.collector.test_process import collector_env, start_collector, stop, wait_streaming
from stock_pipelines_tests.ops.webhook_receiver import Receiver
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COLLECTOR = "inc-1"
BEAT_S = 2.0  # heartbeat interval: down after 3 of them (6 s) without a beat


def exchange_now(url: str) -> datetime:
    return datetime.fromisoformat(admin(url, "/admin/clock")["now"])


def test_a_killed_collector_fires_once_and_its_restart_resolves_once(tmp_path, redis_server):
    receiver = Receiver()
    client = redis_server.client()
    sender = WebhookSender(receiver.url)
    processes = []

    def tick(times: int = 3) -> None:
        for _ in range(times):
            incident_tick(client, sender, exchange_now(url))

    try:
        with run_exchange(day=DAY, symbols=4, start=seoul(10, 0)) as url:
            env = collector_env(tmp_path, url, redis_server.url,
                                STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S=str(BEAT_S))
            processes.append(start_collector(env, "005930,000660", COLLECTOR))
            wait_streaming(processes[-1], client, COLLECTOR)
            tick()
            assert receiver.bodies == []  # beating: nothing wrong
            # the disk floor's state the disk_low incident reads, as the real collector publishes it
            assert read_status(client, COLLECTOR)[COLLECTOR]["disk_low"] is False

            processes[-1].send_signal(signal.SIGKILL)
            processes[-1].wait(10)
            last_beat = HeartbeatStore(client).latest(COLLECTOR).at
            wait_until(lambda: (exchange_now(url) - last_beat).total_seconds() > 3 * BEAT_S + 0.5, 30,
                       "the exchange clock past three missed beats")
            tick()
            assert receiver.events() == [("firing", "collector_down", COLLECTOR)]
            assert f"collector {COLLECTOR}: no heartbeat for " in receiver.bodies[0]["message"]

            processes.append(start_collector(env, "005930,000660", COLLECTOR))
            wait_streaming(processes[-1], client, COLLECTOR)
            wait_until(lambda: HeartbeatStore(client).latest(COLLECTOR).at > last_beat, 30, "a new beat")
            tick()
            assert receiver.events() == [
                ("firing", "collector_down", COLLECTOR),
                ("resolved", "collector_down", COLLECTOR),
            ]
    finally:
        for process in processes:
            stop(process)
        receiver.close()
