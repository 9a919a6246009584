"""The fleet's refusals: a collector whose self-diagnosis fails (an app secret the exchange
refuses) is reported failed and not restarted in a tight loop; the FEATURE_COLLECTORS_ENABLED
kill switch stops the collectors gracefully and starting them again waits until it is on."""

from __future__ import annotations

import time

import pytest

from stock_pipelines.resilience.flags import COLLECTORS
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.collector.conftest import DAY, seoul
from stock_pipelines_tests.collector.test_process import APP_KEY, APP_SECRET, collector_env
from stock_pipelines_tests.fleet.fleet_process import FleetProcess, pid_alive, streaming, write_fleet_file
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WATCH_S = 6.0  # long enough for dozens of restarts if the fleet looped on the failure


def test_a_refused_credential_is_reported_not_restarted_in_a_loop(tmp_path, redis_server):
    with run_exchange(day=DAY, seed=4, symbols=4, start=seoul(9, 30), pinned=True,
                      credentials={APP_KEY: APP_SECRET}) as url:
        codes = url.exchange.day.codes
        env = collector_env(tmp_path, url, redis_server.url, GOOD_KEY=APP_KEY, GOOD_SECRET=APP_SECRET,
                            BAD_SECRET="wrong-secret-never-logged")
        fleet_file = write_fleet_file(
            tmp_path, url, {}, diagnosis_retry={"base_s": 30, "cap_s": 300}, collectors=[
                {"id": "good-1", "symbols": codes[:2],
                 "app_keys": [{"key_env": "GOOD_KEY", "secret_env": "GOOD_SECRET"}]},
                {"id": "bad-1", "symbols": codes[2:],
                 "app_keys": [{"key_env": "GOOD_KEY", "secret_env": "BAD_SECRET"}]},
            ])
        fleet = FleetProcess(fleet_file, env, tmp_path)
        try:
            failed = wait_until(lambda: fleet.events("collector_failed", "bad-1"), 45,
                                "bad-1 reported failed")
            failed_at = time.monotonic()
            assert failed[0]["delay_s"] >= 30  # the slow diagnosis retry, not the crash backoff
            wait_until(lambda: fleet.collector("good-1").get("state") == "running", 30, "good-1 running")
            while time.monotonic() - failed_at < WATCH_S:
                time.sleep(0.5)
            assert len(fleet.events("collector_started", "bad-1")) == 1
            assert fleet.events("collector_restarted", "bad-1") == []
            exited, = fleet.events("collector_exited", "bad-1")
            assert exited["kind"] == "diagnosis_failed" and exited["code"] == 1
            assert "no WebSocket approval key (HTTP 403 EGW00105)" in exited["reason"]

            code, shown, _ = fleet.cli_status("--check")
            bad = shown["collectors"]["bad-1"]
            assert code == 1 and not shown["healthy"]
            assert bad["state"] == "failed" and bad["pid"] is None and bad["restarts"] == 0
            assert 20 <= bad["next_restart_in_s"] <= 30
            assert shown["problems"] == [f"collector bad-1 failed: {bad['last_exit_reason']}"]
            assert shown["collectors"]["good-1"]["state"] == "running"
            assert fleet.terminate() == 0
        finally:
            fleet.close()
        everything = fleet.events_path.read_text() + fleet.stderr() + fleet.status_path.read_text()
        assert "wrong-secret-never-logged" not in everything and APP_SECRET not in everything


def test_the_kill_switch_stops_the_collectors_and_holds_them_until_it_is_on(tmp_path, redis_server):
    client = redis_server.client()
    with run_exchange(day=DAY, seed=5, symbols=2, start=seoul(9, 30), pinned=True) as url:
        env = collector_env(tmp_path, url, redis_server.url)
        fleet_file = write_fleet_file(tmp_path, url, {"switch-1": url.exchange.day.codes})
        fleet = FleetProcess(fleet_file, env, tmp_path)
        try:
            wait_until(lambda: streaming(client, "switch-1"), 45, "switch-1 subscribed")
            first_pid = fleet.collector("switch-1")["pid"]
            client.set(f"sp:flags:{COLLECTORS}", "off")
            wait_until(lambda: fleet.collector("switch-1").get("state") == "disabled", 20,
                       "switch-1 disabled")
            disabled, = fleet.events("collectors_disabled")
            assert disabled["detail"] == f"{COLLECTORS} is off (redis)"
            assert disabled["stopping"] == ["switch-1"]
            exited, = fleet.events("collector_exited", "switch-1")
            assert exited["kind"] == "stopped" and exited["code"] == 0  # SIGTERM: the collector's clean stop
            assert not pid_alive(first_pid)
            time.sleep(1.5)  # five gate polls: nothing starts while the switch is off
            assert fleet.events("collector_restarted") == [] and fleet.collector("switch-1")["pid"] is None
            assert fleet.status()["kill_switch"] == f"{COLLECTORS} is off (redis)"

            client.set(f"sp:flags:{COLLECTORS}", "on")
            wait_until(lambda: fleet.events("collector_restarted", "switch-1"), 20, "switch-1 started again")
            wait_until(lambda: fleet.collector("switch-1").get("state") == "running", 20, "switch-1 running")
            assert fleet.collector("switch-1")["pid"] != first_pid
            assert fleet.terminate() == 0
        finally:
            fleet.close()
