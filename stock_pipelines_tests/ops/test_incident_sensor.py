"""incident_sensor, as the daemon runs it: the archive's freshness (the tick_archive_fresh check's
own verdict on real archive files) and the incident sources in Redis become one alert each way
at a local webhook."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.resources import ArchiveResource, RedisResource
from stock_pipelines.defs.sensors.incidents import incident_sensor
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
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
    bound = {"redis": RedisResource(), "alerts": AlertResource(), "archive": ArchiveResource()}
    breaker = CircuitBreaker("broker:kis", RedisStateStore(redis_server.client()), clock=NOW.timestamp)
    write_day(root, "kis-1", session_trades("005930", 30, start=(10, 0)))
    last_write(root, 10)
    cursor = None
    try:
        with dg.instance_for_test() as instance:

            def evaluate(times: int = 3) -> str:
                nonlocal cursor
                for _ in range(times):
                    context = dg.build_sensor_context(instance=instance, resources=bound, cursor=cursor)
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
