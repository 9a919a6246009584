"""`collector run --metrics-port`: a real collector process against the real simulated exchange
serves every named series on /metrics, the counters move as trades arrive, and /health turns 503
with the reason when the feed is lost."""

from __future__ import annotations

import pytest

from stock_pipelines.collector.metrics import SERIES
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.collector.conftest import DAY, seoul
from stock_pipelines_tests.collector.test_process import (
    APP_KEY,
    APP_SECRET,
    collector_env,
    start_collector,
    stop,
    wait_streaming,
)
from stock_pipelines_tests.dagster_dev import free_port
from stock_pipelines_tests.waiting import wait_until

from .scrape import health, scrape

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ARCHIVED = "stock_pipelines_collector_trades_total"


def test_metrics_and_health_of_a_running_collector(tmp_path, redis_server):
    client = redis_server.client()
    port = free_port()
    with run_exchange(day=DAY, seed=5, symbols=8, start=seoul(10, 0), speed=60,
                      credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_METRICS_PORT=str(port))
        process = start_collector(env, ",".join(url.exchange.day.codes), "metrics-1")
        try:
            wait_streaming(process, client, "metrics-1")
            first = wait_until(lambda: (s := scrape(port)).value(ARCHIVED, stage="archived") and s, 20,
                               "trades archived")
            assert set(SERIES) <= first.families(), set(SERIES) - first.families()
            labels = {"collector": "metrics-1"}
            assert first.value("stock_pipelines_collector_shards", **labels) == 1
            assert first.value("stock_pipelines_collector_shards_connected", **labels) == 1
            assert first.value("stock_pipelines_collector_source_active", source="primary", **labels) == 1
            assert first.value("stock_pipelines_collector_failed_over", **labels) == 0
            assert first.value("stock_pipelines_collector_state", state="connected", **labels) == 1
            assert first.value("stock_pipelines_collector_disk_free_bytes", **labels) > 0
            assert 0 <= first.value("stock_pipelines_collector_heartbeat_age_seconds", **labels) < 5
            assert first.value("stock_pipelines_collector_healthy", **labels) == 1
            received = first.value(ARCHIVED, stage="received", **labels)
            assert received >= first.value(ARCHIVED, stage="archived", **labels) > 0
            assert health(port) == (200, "ok\n")

            before = first.value(ARCHIVED, stage="archived", **labels)
            later = wait_until(
                lambda: (s := scrape(port)).value(ARCHIVED, stage="archived", **labels) > before and s, 20,
                "the archived counter to move")
            assert later.value(ARCHIVED, stage="received", **labels) > received
            assert APP_SECRET not in later.text and APP_KEY not in later.text
        except BaseException:
            stop(process)
            raise
    # the exchange is gone: the sessions drop, the collector reconnects in vain
    try:
        _, body = wait_until(lambda: (h := health(port))[0] == 503 and h, 30, "/health 503")
        assert "feed: no session subscribed on source primary" in body
        after = scrape(port)
        assert after.value("stock_pipelines_collector_reconnects_total", collector="metrics-1") >= 1
        assert after.value("stock_pipelines_collector_healthy", collector="metrics-1") == 0
        assert after.value("stock_pipelines_collector_shards_connected", collector="metrics-1") == 0
        failures = [s for s in after.samples if s.name == "stock_pipelines_collector_link_failures_total"]
        assert failures and all(s.value >= 1 for s in failures)
    finally:
        stop(process)
