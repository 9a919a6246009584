"""A fleet collector with `fallback: kiwoom` gets `--fallback kiwoom` and the Kiwoom key its entry
names, under the names the collector reads (a wrong Kiwoom key the supervisor inherited is not
passed on): when the simulated exchange drops KIS and refuses its key, the collector fails over to
Kiwoom, which the exchange only allows with the right key."""

from __future__ import annotations

import pytest

from stock_pipelines.collector.status import read_status as read_collector_status
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.collector.conftest import DAY, admin, seoul
from stock_pipelines_tests.collector.test_kiwoom_feed import CREDENTIALS, KIWOOM_KEY, KIWOOM_SECRET
from stock_pipelines_tests.collector.test_process import collector_env
from stock_pipelines_tests.fleet.fleet_process import FleetProcess, streaming, write_fleet_file
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_the_fallback_broker_and_its_key_reach_the_collector(tmp_path, redis_server):
    client = redis_server.client()
    with run_exchange(day=DAY, seed=5, symbols=4, start=seoul(10, 0), pinned=True, speed=60,
                      credentials=CREDENTIALS) as url:
        env = collector_env(tmp_path, url, redis_server.url, KW_KEY=KIWOOM_KEY, KW_SECRET=KIWOOM_SECRET,
                            KIWOOM_APP_KEY=KIWOOM_KEY, KIWOOM_SECRET_KEY="inherited-and-wrong")
        fleet_file = write_fleet_file(
            tmp_path, url, {}, exchange={"kis_base_url": str(url), "kiwoom_base_url": str(url)},
            collector_settings={"HEARTBEAT_WALL_S": 0.5, "FLUSH_INTERVAL_S": 0.2, "FAILOVER_AFTER": 2},
            collectors=[{"id": "fo-fleet", "symbols": list(url.exchange.day.codes), "fallback": "kiwoom",
                         "fallback_app_key": {"key_env": "KW_KEY", "secret_env": "KW_SECRET"}}])
        fleet = FleetProcess(fleet_file, env, tmp_path)
        try:
            wait_until(lambda: streaming(client, "fo-fleet"), 45, "fo-fleet subscribed on KIS")
            assert '"brokers": ["kis", "kiwoom"]' in fleet.stderr()  # its start line: --fallback kiwoom
            admin(url, "/admin/clock", {"pinned": False})
            admin(url, "/admin/faults", {"mode": "drop_ws", "target": "kis"})
            admin(url, "/admin/faults", {"mode": "unauthorized", "target": "kis"})
            status = wait_until(lambda: (s := read_collector_status(client, "fo-fleet")["fo-fleet"]).get(
                "broker") == "kiwoom" and s.get("connected") == s.get("shards") and s, 30, "failover to Kiwoom")
            assert status["failover"] != "primary"
            assert "inherited-and-wrong" not in fleet.stderr()
            assert fleet.events("collector_exited") == []
            assert fleet.terminate() == 0
        finally:
            fleet.close()
