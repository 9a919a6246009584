"""A real Prometheus scrapes the collectors of a real `stock-pipelines fleet run` (two collectors on
their fleet-file metrics ports, streaming from the `sim exchange` process) through a targets file
labelled by collector id, as docker/prometheus/targets/collectors.yml does in compose. A SIGKILLed
collector fires CollectorDown for that collector; the fleet restarts it and the alert resolves."""

from __future__ import annotations

import os
import signal

import pytest
import yaml

from stock_pipelines.resilience.dormant import DormantGuard
from stock_pipelines.resilience.state_store import RedisStateStore
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.collector.conftest import DAY
from stock_pipelines_tests.collector.test_process import collector_env
from stock_pipelines_tests.dagster_dev import free_port
from stock_pipelines_tests.fleet.fleet_process import FleetProcess, streaming, write_fleet_file
from stock_pipelines_tests.waiting import wait_until

from .prometheus import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SEED, SYMBOLS, SPEED = 13, 4, 60
# In dormant mode the fleet restarts a crashed collector after exactly the backoff cap (fleet/policy.py),
# not uniform(0, base): the victim stays down long enough for CollectorDown (scrape 2 s + `for: 3s`).
RESTART_CAP_S = 10.0
ARCHIVED = 'stock_pipelines_collector_trades_total{job="collectors",stage="archived"}'


def _distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _archived(prometheus: PrometheusServer) -> dict[str, float]:
    return {s["metric"]["collector"]: float(s["value"][1]) for s in prometheus.query(ARCHIVED)}


def test_prometheus_scrapes_the_fleet_and_sees_a_killed_collector_down_until_the_fleet_restarts_it(
        tmp_path, redis_server):
    client = redis_server.client()
    args = ["--date", DAY.isoformat(), "--seed", str(SEED), "--symbols", str(SYMBOLS), "--speed", str(SPEED),
            "--start", "09:00"]
    with run_exchange_process(args) as url:
        codes = SimDay(DAY, seed=SEED, symbols=SYMBOLS).codes
        ports = dict(zip(("fleet-a", "fleet-b"), _distinct_ports(2), strict=True))
        fleet_file = write_fleet_file(
            tmp_path, url, {}, restart_backoff={"base_s": 0.5, "cap_s": RESTART_CAP_S},
            collectors=[{"id": cid, "symbols": codes[2 * i:2 * i + 2], "metrics_port": port}
                        for i, (cid, port) in enumerate(ports.items())])
        targets_file = tmp_path / "collectors.yml"
        targets_file.write_text(yaml.safe_dump(
            [{"targets": [f"127.0.0.1:{port}"], "labels": {"collector": cid}} for cid, port in ports.items()]))
        fleet = FleetProcess(fleet_file, collector_env(tmp_path, url, redis_server.url), tmp_path)
        try:
            wait_until(lambda: all(streaming(client, cid) for cid in ports), 60, "both collectors subscribed")
            code, shown, _ = fleet.cli_status()
            assert code == 0
            assert {cid: c["metrics_url"] for cid, c in shown["collectors"].items()} == {
                cid: f"http://127.0.0.1:{port}/metrics" for cid, port in ports.items()}

            with PrometheusServer(tmp_path / "prometheus", targets_file) as prometheus:
                prometheus.wait_for(lambda: prometheus.collector_targets() == {"fleet-a": "up", "fleet-b": "up"},
                                    30, "both fleet collectors scraped up")
                first = prometheus.wait_for(lambda: (a := _archived(prometheus)).keys() == ports.keys() and a,
                                            20, "archived-trade counters of both collectors")
                prometheus.wait_for(lambda: all(v > first[c] for c, v in _archived(prometheus).items()), 20,
                                    "both collectors' archived-trade counters moving")
                (sample,) = prometheus.query(f'{ARCHIVED[:-1]},collector="fleet-b"}}')
                assert sample["metric"]["instance"] == f"127.0.0.1:{ports['fleet-b']}"
                assert "exported_collector" not in sample["metric"]  # the target's label and the series' agree
                assert prometheus.alerts("CollectorDown") == []

                DormantGuard(RedisStateStore(client)).enter("test: restarts wait the backoff cap")
                wait_until(lambda: fleet.status().get("dormant") is True, 10, "the fleet seeing dormant mode")
                victim_pid = fleet.collector("fleet-a")["pid"]
                os.kill(victim_pid, signal.SIGKILL)
                (down,) = prometheus.wait_for(lambda: prometheus.alerts("CollectorDown", "firing"), 20,
                                              "CollectorDown firing")
                assert down["labels"]["collector"] == "fleet-a"
                assert down["labels"]["instance"] == f"127.0.0.1:{ports['fleet-a']}"
                assert down["labels"]["severity"] == "critical"
                assert prometheus.collector_targets()["fleet-b"] == "up"

                (restarted,) = wait_until(lambda: fleet.events("collector_restarted", "fleet-a"), 30,
                                          "the fleet restarting fleet-a")
                assert restarted["pid"] != victim_pid
                prometheus.wait_for(lambda: prometheus.collector_targets()["fleet-a"] == "up", 30,
                                    "fleet-a scraped up again")
                prometheus.wait_for(lambda: prometheus.alerts("CollectorDown") == [], 10, "CollectorDown resolved")
                assert fleet.events("collector_exited", "fleet-b") == []
            assert fleet.terminate() == 0
        finally:
            fleet.close()
