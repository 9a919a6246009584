"""At 60x: heartbeats stamped on an accelerated exchange clock, judged by the sensor over a real
Redis. With the project clock at the same speed a dead collector is called stale and recovered;
on a 1x project clock its beats are from the sensor's future, and the sensor says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.defs.sensors.heartbeat import collector_heartbeat_sensor, wall_interval_s
from stock_pipelines.defs.sensors.incidents import wall_interval_s as incident_wall_interval_s
from stock_pipelines.heartbeat import Heartbeat, HeartbeatStore
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.resilience.flags import AUTO_RECOVERY, HEARTBEAT_MONITORING
from stock_pipelines.sim.clock import SimClock

RESOURCES = {"redis": RedisResource(), "broker": BrokerResource()}  # the environment decides
SPEED = 60
START = datetime(2026, 11, 20, 10, 0, tzinfo=SEOUL)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def beat_then_die(store: HeartbeatStore, exchange_clock: SimClock, beats: int) -> datetime:
    """Beat every 5 exchange seconds, as a collector on the exchange clock does; the last stamp."""
    started = exchange_clock.now()
    for _ in range(beats):
        store.beat(Heartbeat("c60", "h", 1, started, exchange_clock.now(), ("005930",)))
        time.sleep(5 / SPEED)
    return datetime.fromisoformat(store.latest("c60").at.isoformat())


@pytest.mark.parametrize("project_speed", [SPEED, 1])
def test_a_dead_collector_at_60x_is_stale_on_a_60x_project_clock_and_a_warning_on_a_1x_one(
    redis_server, monkeypatch, instance, project_speed
):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    for flag in (AUTO_RECOVERY, HEARTBEAT_MONITORING):
        monkeypatch.delenv(flag, raising=False)
    wall = time.time()
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(START, wall, speed=project_speed))
    exchange_clock = SimClock(START, speed=SPEED)  # anchored within microseconds of `wall`
    store = HeartbeatStore(redis_server.client(), clock=lambda: exchange_clock.now().astimezone(UTC))
    last = beat_then_die(store, exchange_clock, beats=10)
    time.sleep(1.0)  # a minute of exchange time without a beat: 12 missed 5-second beats

    context = dg.build_sensor_context(instance=instance, resources=RESOURCES)
    result = collector_heartbeat_sensor(context)

    if project_speed == SPEED:
        [request] = result.run_requests
        assert request.tags["stock_pipelines/collector"] == "c60" and request.partition_key == "2026-11-20"
        assert request.run_key.startswith(f"recovery:c60:20261120:{last.astimezone(SEOUL):%H%M%S}-")
    else:
        assert result.run_requests == []
        reason = result.skip_reason.skip_message
        assert "c60's last heartbeat" in reason and "ahead of the project clock" in reason
        assert "STOCK_PIPELINES_FAKE_NOW=ISO@epoch*speed" in reason


@pytest.mark.parametrize("speed, interval", [(60, 1), (4, 2), (1, 10), (0, 10), (0.5, 10)])
def test_the_sensor_evaluates_as_often_in_project_time_as_at_1x(speed, interval):
    assert wall_interval_s(speed) == interval


def test_the_daemon_loading_the_sensor_on_a_60x_clock_evaluates_every_wall_second():
    env = {k: v for k, v in os.environ.items() if k != ENV_FAKE_NOW}
    env[ENV_FAKE_NOW] = fake_now_value(START, time.time(), speed=60)
    code = ("from stock_pipelines.defs.sensors.heartbeat import collector_heartbeat_sensor as s; "
            "print(s.minimum_interval_seconds)")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1"


@pytest.mark.parametrize("speed, interval", [(600, 2), (2400, 2), (10, 3), (1, 30), (0, 30)])
def test_the_incident_sensor_follows_the_clock_but_not_faster_than_every_2_wall_seconds(speed, interval):
    assert incident_wall_interval_s(speed) == interval
