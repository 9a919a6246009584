"""incident_sensor, as the daemon runs it: the archive's freshness (the tick_archive_fresh check's
own verdict on real archive files) and the incident sources in Redis become one alert each way
at a local webhook, without the secrets of the broker resource bound beside the alerts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, RedisResource
from stock_pipelines.defs.sensors.incidents import incident_sensor
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.redis_conn import key
from stock_pipelines.resilience.breaker import CircuitBreaker
from stock_pipelines.resilience.state_store import RedisStateStore
from stock_pipelines_tests.archive.conftest import seoul_us, session_trades, write_day
from stock_pipelines_tests.ops.webhook_receiver import Receiver

NOW = datetime.fromtimestamp(seoul_us(10, 30) / 1e6, UTC)  # continuous trading, 2026-11-20


def last_write(root, seconds_ago: float) -> None:
    for path in root.rglob("*.jsonl"):
        os.utime(path, (NOW.timestamp() - seconds_ago, NOW.timestamp() - seconds_ago))


def test_the_sensor_alerts_a_stale_archive_and_a_breaker_once_each_way(redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    root = tmp_path / "archive"
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(root))
    monkeypatch.delenv("STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR", raising=False)
    monkeypatch.setenv("STOCK_PIPELINES_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(NOW))
    alerts = AlertResource(broker=BrokerResource())
    bound = {"redis": RedisResource(), "alerts": alerts, "archive": ArchiveResource()}
    breaker = CircuitBreaker("broker:kis", RedisStateStore(redis_server.client()), clock=NOW.timestamp)
    write_day(root, "kis-1", session_trades("005930", 30, start=(10, 0)))
    last_write(root, 10)
    cursor = None
    try:
        with dg.instance_for_test() as instance:

            def evaluate(times: int = 3) -> str:
                nonlocal cursor
                for _ in range(times):
                    built = dg.build_sensor_context(instance=instance, resources=bound, cursor=cursor)
                    with built as context:
                        result = incident_sensor(context)
                    cursor = result.cursor
                return result.skip_reason.skip_message

            assert evaluate() == "opened 0, resolved 0, alerts delivered 0"
            last_write(root, 300)  # kis-1 stopped writing 5 minutes ago
            breaker.trip_permanently("pre-flight: missing KIS_APP_KEY")
            evaluate()
            assert sorted(receiver.events()) == [
                ("firing", "archive_stale", "tick_archive"),
                ("firing", "breaker_permanent_open", "kis"),
            ]
            stale = next(b for b in receiver.bodies if b["kind"] == "archive_stale")
            assert "logs not written: kis-1 (silent 300s)" in stale["text"]
            last_write(root, 5)
            breaker.reset("alice", "key set")
            evaluate()
            assert sorted(receiver.events()[2:]) == [
                ("resolved", "archive_stale", "tick_archive"),
                ("resolved", "breaker_permanent_open", "kis"),
            ]
            assert evaluate() == "opened 0, resolved 0, alerts delivered 0"
    finally:
        receiver.close()


def test_the_secrets_of_the_bound_broker_never_reach_the_webhook(redis_server, monkeypatch, tmp_path):
    """The app key and secret exist only as the broker resource's fields (not in the environment);
    an incident whose detail carries them bare (no `appkey=` shape the patterns know) is alerted
    with both masked, and the stored incident holds neither."""
    app_key, app_secret = "PSk3yBoundOnly0001", "PSs3cretBoundOnly02"
    for var in ("KIS_APP_KEY", "KIS_APP_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(NOW))
    root = tmp_path / "archive"
    write_day(root, "kis-1", session_trades("005930", 30, start=(10, 0)))
    last_write(root, 10)
    receiver = Receiver()
    broker = BrokerResource(
        broker="kis", base_url="http://127.0.0.1:9", app_key=app_key, app_secret=app_secret
    )
    redis = RedisResource(url=redis_server.url)
    bound = {
        "redis": redis,
        "alerts": AlertResource(broker=broker, webhook_url=receiver.url),
        "archive": ArchiveResource(archive_dir=str(root)),
    }
    client = redis.client()
    breaker = CircuitBreaker("broker:kis", RedisStateStore(client), clock=NOW.timestamp)
    breaker.trip_permanently(f"the broker refused {app_key} with {app_secret}")
    try:
        with dg.instance_for_test() as instance:
            with dg.build_sensor_context(instance=instance, resources=bound) as context:
                incident_sensor(context)
        assert receiver.events() == [("firing", "breaker_permanent_open", "kis")]
        assert "the broker refused *** with ***" in receiver.bodies[0]["message"]
        stored = json.dumps(client.hgetall(key("incidents", "open")))
        assert "breaker_permanent_open" in stored and app_key not in stored and app_secret not in stored
        assert app_key not in json.dumps(receiver.bodies) and app_secret not in json.dumps(receiver.bodies)
    finally:
        receiver.close()


def test_the_scrubbed_secrets_are_the_bound_brokers_and_every_configured_feeds(monkeypatch):
    """The collector's feed settings (here the deployment's variables) add the keys the pre-flight
    probes: the other broker's, a KIS sharding key, the failover account; an unknown broker name
    still leaves what the settings hold to scrub."""
    settings = {
        "KIS_BASE_URL": "http://127.0.0.1:9",
        "KIS_APP_KEY_2": "kis-shard-key", "KIS_APP_SECRET_2": "kis-shard-secret",
        "KIS_SECONDARY_APP_KEY": "kis-failover-key", "KIS_SECONDARY_APP_SECRET": "kis-failover-secret",
        "KIWOOM_BASE_URL": "http://127.0.0.1:9",
        "KIWOOM_APP_KEY": "kiwoom-key", "KIWOOM_SECRET_KEY": "kiwoom-secret",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "STOCK_PIPELINES_BROKER"):
        monkeypatch.delenv(name, raising=False)
    bound = BrokerResource(broker="kis", app_key="bound-key", app_secret="bound-secret")
    assert set(bound.secrets()) == {
        "bound-key", "bound-secret", "kis-shard-key", "kis-shard-secret",
        "kis-failover-key", "kis-failover-secret", "kiwoom-key", "kiwoom-secret",
    }
    assert AlertResource(broker=bound).secrets() == bound.secrets()
    unknown = BrokerResource(broker="nasdaq", app_key="bound-key")
    assert set(unknown.secrets()) == {"kiwoom-key", "kiwoom-secret"}
