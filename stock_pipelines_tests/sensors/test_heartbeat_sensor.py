"""collector_heartbeat_sensor as Dagster calls it (`build_sensor_context`), over a real Redis and a
pinned fake clock: the run request it makes, its cursor, kill switches, Redis down, and a restart
found from the heartbeat store's up-intervals."""

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest

from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.defs.sensors.heartbeat import collector_heartbeat_sensor
from stock_pipelines.heartbeat import Heartbeat, HeartbeatPublisher, HeartbeatStore, Snapshot
from stock_pipelines.heartbeat.model import LifecycleEvent
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.cursor_namespaces import cursor_for
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.resilience.flags import AUTO_RECOVERY, HEARTBEAT_MONITORING, FeatureFlags
from stock_pipelines.redis_conn import RedisSettings, configure

RESOURCES = {"redis": RedisResource(), "broker": BrokerResource()}  # the environment decides


def at(hhmmss: str) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return datetime(2026, 11, 20, h, m, s, tzinfo=SEOUL)


@pytest.fixture
def redis_env(redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    for flag in (AUTO_RECOVERY, HEARTBEAT_MONITORING):
        monkeypatch.delenv(flag, raising=False)
    return redis_server


def beats(store: HeartbeatStore, collector: str, start: datetime, end: datetime, every_s: int = 5) -> None:
    t = start
    while t <= end:
        store.beat(Heartbeat(collector, "h", 1, start, t, ("005930", "000660")))
        t += timedelta(seconds=every_s)


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def evaluate(monkeypatch, instance):
    def run(now: datetime, cursor: str | None = None) -> dg.SensorResult:
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(now))
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
        return collector_heartbeat_sensor(context)  # the redis_env fixture's server, through REDIS_URL

    return run


def test_a_dead_collector_becomes_one_recovery_run_request_with_its_windows(redis_env, monkeypatch, evaluate):
    beats(HeartbeatStore(redis_env.client()), "c1", at("09:50:00"), at("10:00:00"))
    result = evaluate(at("10:00:20"))
    [request] = result.run_requests
    assert request.run_key == "recovery:c1:20261120:100000-100020:a1"
    assert request.job_name == "recovery_job" and request.partition_key == "2026-11-20"
    assert request.run_config == {
        "ops": {
            "gap_report": {
                "config": {
                    "requested_by": "collector_heartbeat_sensor:c1",
                    "requested_windows": ["2026-11-20T10:00:00+09:00/2026-11-20T10:00:20+09:00"],
                }
            }
        }
    }
    assert (
        request.tags["stock_pipelines/collector"] == "c1" and request.tags["stock_pipelines/attempt"] == "1"
    )
    assert json.loads(request.tags["stock_pipelines/window"])["attempt"] == 1
    assert not any(
        "secret" in k.lower() or "key" in v.lower() for k, v in request.tags.items() if k != "dagster/run_key"
    )
    again = evaluate(at("10:00:30"), result.cursor)
    assert again.run_requests == [] and again.skip_reason  # no duplicate from the saved cursor


def test_kill_switches_in_redis_are_read_at_every_evaluation(redis_env, monkeypatch, evaluate):
    client = redis_env.client()
    beats(HeartbeatStore(client), "c1", at("09:50:00"), at("10:00:00"))
    FeatureFlags(client).set(HEARTBEAT_MONITORING, False)
    off = evaluate(at("10:00:20"))
    assert off.run_requests == [] and "heartbeat monitoring is off" in off.skip_reason.skip_message
    FeatureFlags(client).set(HEARTBEAT_MONITORING, True)
    FeatureFlags(client).set(AUTO_RECOVERY, False)
    held = evaluate(at("10:00:30"), off.cursor)
    assert held.run_requests == [] and "automatic recovery is off" in held.skip_reason.skip_message
    monkeypatch.setenv(AUTO_RECOVERY, "false")  # the environment's off wins over Redis' on
    FeatureFlags(client).set(AUTO_RECOVERY, True)
    still = evaluate(at("10:00:40"), held.cursor)
    assert still.run_requests == [] and "via env" in still.skip_reason.skip_message
    monkeypatch.delenv(AUTO_RECOVERY)
    on = evaluate(at("10:00:50"), still.cursor)
    assert [r.run_key for r in on.run_requests] == ["recovery:c1:20261120:100000-100030:a1"]


def test_a_restart_is_measured_from_the_last_activity_in_the_up_intervals(redis_env, monkeypatch, evaluate):
    store = HeartbeatStore(redis_env.client())
    beats(store, "c1", at("09:50:00"), at("10:01:00"))
    first = evaluate(at("10:01:02"))
    assert first.run_requests == []
    store.event("c1", LifecycleEvent.UP, at("10:03:00"))
    beats(store, "c1", at("10:03:00"), at("10:03:05"))
    result = evaluate(at("10:03:06"), first.cursor)
    assert [r.run_key for r in result.run_requests] == ["recovery:c1:20261120:100100-100300:a1"]
    # the event is consumed: evaluating again from the new cursor launches nothing
    assert evaluate(at("10:03:08"), result.cursor).run_requests == []


class BackDatedProcess:
    """A collector process as `collector.runner` runs one: beats stamped a second before the clock
    (`StatusPublisher.durable_now`), through the real `HeartbeatPublisher`; UP written at the clock, then the
    first beat, which is stamped before the UP."""

    def __init__(self, store: HeartbeatStore, collector: str, started: datetime) -> None:
        self.now = started
        self.publisher = HeartbeatPublisher(store, collector, lambda: Snapshot(("005930",), None),
                                            interval_s=5.0, clock=lambda: self.now - timedelta(seconds=1))
        store.event(collector, LifecycleEvent.UP, started, self.publisher.up_detail())
        self.publisher.beat_once()

    def beat_until(self, end: datetime) -> None:
        while self.now + timedelta(seconds=5) <= end:
            self.now += timedelta(seconds=5)
            self.publisher.beat_once()


def test_a_restart_after_a_detected_outage_launches_the_rest_although_the_first_beat_predates_the_up(
    redis_env, evaluate
):
    store = HeartbeatStore(redis_env.client())
    old = BackDatedProcess(store, "c1", at("09:50:00"))
    old.beat_until(at("10:00:00"))  # SIGKILLed after its 10:00:00 beat (stamped 09:59:59)
    healthy = evaluate(at("10:00:05"))
    assert healthy.run_requests == []
    first_wave = evaluate(at("10:00:20"), healthy.cursor)
    assert [r.run_key for r in first_wave.run_requests] == ["recovery:c1:20261120:095959-100020:a1"]
    new = BackDatedProcess(store, "c1", at("10:02:30"))  # restarted 2.5 minutes later
    after = evaluate(at("10:02:35"), first_wave.cursor)
    assert after.run_requests == []  # the rest runs to the end of 10:02, once that minute has closed
    new.beat_until(at("10:03:05"))
    closed = evaluate(at("10:03:06"), after.cursor)
    assert [r.run_key for r in closed.run_requests] == ["recovery:c1:20261120:100020-100300:a1"]


def test_a_quick_restart_before_the_outage_is_seen_is_measured_from_the_previous_process(redis_env, evaluate):
    store = HeartbeatStore(redis_env.client())
    old = BackDatedProcess(store, "c1", at("09:50:00"))
    old.beat_until(at("10:00:00"))
    healthy = evaluate(at("10:00:05"))
    assert healthy.run_requests == []
    new = BackDatedProcess(store, "c1", at("10:00:12"))  # back before three beats were missed
    result = evaluate(at("10:00:14"), healthy.cursor)
    assert result.run_requests == []
    new.beat_until(at("10:01:05"))
    result = evaluate(at("10:01:06"), result.cursor)
    assert [r.run_key for r in result.run_requests] == ["recovery:c1:20261120:095959-100100:a1"]


def test_redis_down_means_switches_read_as_off_and_nothing_is_launched(redis_env, monkeypatch, evaluate):
    beats(HeartbeatStore(redis_env.client()), "c1", at("09:50:00"), at("10:00:00"))
    first = evaluate(at("10:00:05"))
    redis_env.kill()
    result = evaluate(at("10:00:20"), first.cursor)
    assert result.run_requests == []
    assert "heartbeat monitoring is off" in result.skip_reason.skip_message
    assert "redis_unreachable" in result.skip_reason.skip_message
    stream = lambda evaluation: json.loads(cursor_for(evaluation.cursor, "sp"))["stream"]
    assert stream(result) == stream(first)


def test_a_dead_collector_under_another_key_prefix_is_not_this_namespaces_business(
    redis_env, monkeypatch, evaluate
):
    """The demo runs the sensor under its own prefix on the same instance: what it sees (a
    simulated collector, its stream position) never reaches the real namespace's evaluation."""
    monkeypatch.setenv("STOCK_PIPELINES_REDIS_PREFIX", "sp-demo")  # the sensor's resource reads it
    configure(RedisSettings(url=redis_env.url, prefix="sp-demo"))  # this process's own writes
    beats(HeartbeatStore(redis_env.client()), "sim-1", at("09:50:00"), at("10:00:00"))
    demo = evaluate(at("10:00:20"))
    assert [r.run_key for r in demo.run_requests] == ["recovery:sim-1:20261120:100000-100020:a1"]
    monkeypatch.setenv("STOCK_PIPELINES_REDIS_PREFIX", "sp")
    real = evaluate(at("10:05:00"), demo.cursor)
    assert real.run_requests == [] and real.skip_reason.skip_message == "all collectors healthy"
    assert cursor_for(real.cursor, "sp-demo") == cursor_for(demo.cursor, "sp-demo")  # the demo's entry kept
    assert "sim-1" not in cursor_for(real.cursor, "sp")


def test_a_run_for_two_outages_asks_for_each_outage_not_their_hull():
    from stock_pipelines.defs.sensors.heartbeat import run_request
    from stock_pipelines.ops.heartbeat_rules import Launch
    from stock_pipelines.ops.recovery_window import Window

    spans = ((at("10:00:00"), at("10:25:00")), (at("13:40:00"), at("13:52:00")))
    window = Window("c1", at("10:00:00").date(), at("10:00:00"), at("13:52:00"), spans=spans)
    request = run_request(Launch("recovery", window.run_key, "c1", "restart after downtime", window))
    assert request.run_key == "recovery:c1:20261120:100000-135200:a1"
    assert request.run_config["ops"]["gap_report"]["config"]["requested_windows"] == [
        "2026-11-20T10:00:00+09:00/2026-11-20T10:25:00+09:00",
        "2026-11-20T13:40:00+09:00/2026-11-20T13:52:00+09:00",
    ]
