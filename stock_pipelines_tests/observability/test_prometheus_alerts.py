"""A real Prometheus (docker/prometheus's config and rules, short intervals) scrapes a real
collector process streaming from the simulated exchange and the automation exporter; SIGKILL of
the collector fires CollectorDown in Prometheus's own /api/v1/alerts."""

from __future__ import annotations

import signal

import pytest

from stock_pipelines.ops.clock import ENV_FAKE_NOW
from stock_pipelines.ops.governance import RecoveryGovernance
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

from .prometheus import PrometheusServer
from .test_exporter import exporter_env, start_exporter
from .test_exporter import stop as stop_exporter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_killing_a_collector_fires_collector_down(tmp_path, redis_server, monkeypatch):
    # the automation's clock: the collector's day past its 16:30 deadline, no report written
    now = f"{DAY}T16:45:00+09:00"
    monkeypatch.setenv(ENV_FAKE_NOW, now)
    client = redis_server.client()
    RecoveryGovernance(client, "kis").guard.enter("ten failed recoveries in a row")
    port = free_port()
    with run_exchange(day=DAY, seed=7, symbols=6, start=seoul(10, 0), speed=60,
                      credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_METRICS_PORT=str(port))
        collector = start_collector(env, ",".join(url.exchange.day.codes), "prom-1")
        exporter, exporter_port = start_exporter(exporter_env(tmp_path, redis_server.url, now),
                                                 "--no-instance")
        collector_target = f"127.0.0.1:{port}"
        try:
            wait_streaming(collector, client, "prom-1")
            with PrometheusServer(tmp_path / "prometheus", [collector_target],
                                  f"127.0.0.1:{exporter_port}") as prometheus:
                prometheus.wait_for(lambda: set(prometheus.targets().values()) == {"up"}, 30,
                                    "both targets up")
                archived = prometheus.wait_for(lambda: prometheus.query(
                    'stock_pipelines_collector_trades_total{stage="archived",collector="prom-1"} > 0'), 20,
                    "archived trades in Prometheus")
                assert archived[0]["metric"]["instance"] == collector_target
                prometheus.wait_for(lambda: prometheus.alerts("AutomationDormant", "firing"), 20,
                                    "AutomationDormant firing")
                prometheus.wait_for(lambda: prometheus.alerts("DayNotCertified", "firing"), 20,
                                    "DayNotCertified firing")
                assert prometheus.alerts("CollectorDown", "firing") == []

                collector.send_signal(signal.SIGKILL)
                collector.wait(10)
                (down,) = prometheus.wait_for(lambda: prometheus.alerts("CollectorDown", "firing"), 30,
                                              "CollectorDown firing")
                assert down["labels"]["instance"] == collector_target
                assert down["labels"]["severity"] == "critical"
                assert prometheus.alerts("ExporterDown", "firing") == []
        finally:
            stop(collector)
            stop_exporter(exporter)
