"""The fleet against the real `sim exchange` process and a real Redis: three real collectors,
two SIGKILLed and restarted within the backoff bound (from the fleet's own event log), the
restarts in `fleet status`, a SIGTERM that stops every child, and the pipeline recovering what
the killed collectors missed: minute_bars equal the simulator's truth for their symbols."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.collector.conftest import DAY, admin, end_the_day, pin, seoul
from stock_pipelines_tests.collector.test_process import collector_env
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.fleet.fleet_process import FleetProcess, pid_alive, streaming, write_fleet_file
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import ASSETS
from stock_pipelines_tests.truth import truth_bars
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SEED, SYMBOLS, SPEED = 21, 6, 120
RESTART_BASE_S = 0.5  # restart_backoff.base_s of the fleet file: the first restart's bound
SLACK_S = 1.0  # the supervisor's poll tick, a process spawn and a loaded machine


def _exchange_now(url: str) -> datetime:
    return datetime.fromisoformat(admin(url, "/admin/clock")["now"])


def test_killed_collectors_are_restarted_within_the_bound_and_their_downtime_recovered(
        tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    args = ["--date", DAY.isoformat(), "--seed", str(SEED), "--symbols", str(SYMBOLS), "--speed", str(SPEED),
            "--pin", "--start", "08:58"]
    with run_exchange_process(args) as url:
        codes = SimDay(DAY, seed=SEED, symbols=SYMBOLS).codes
        groups = {"fleet-a": codes[0:2], "fleet-b": codes[2:4], "fleet-c": codes[4:6]}
        env = collector_env(tmp_path, url, redis_server.url)
        fleet = FleetProcess(write_fleet_file(tmp_path, url, groups), env, tmp_path)
        beats = HeartbeatStore(client)
        try:
            wait_until(lambda: all(streaming(client, c) for c in groups), 60, "three collectors subscribed")
            first_pids = {c: fleet.collector(c)["pid"] for c in groups}
            admin(url, "/admin/clock", {"pinned": False})
            wait_until(lambda: all((b := beats.latest(c)) and b.last_trade_at
                                   and b.last_trade_at >= seoul(9, 2) for c in groups),
                       30, "heartbeats vouching for trades up to 09:02")

            killed_at = time.time()
            for victim in ("fleet-a", "fleet-b"):
                os.kill(first_pids[victim], signal.SIGKILL)
            kill_exchange_time = _exchange_now(url)
            wait_until(lambda: len(fleet.events("collector_restarted")) == 2, 20, "both victims restarted")
            for victim in ("fleet-a", "fleet-b"):
                exited, = fleet.events("collector_exited", victim)
                scheduled, = fleet.events("restart_scheduled", victim)
                restarted, = fleet.events("collector_restarted", victim)
                assert exited["code"] == -signal.SIGKILL and exited["reason"] == "crashed (killed by SIGKILL)"
                assert exited["pid"] == first_pids[victim] and exited["epoch"] - killed_at <= SLACK_S
                assert 0 <= scheduled["delay_s"] <= RESTART_BASE_S and scheduled["attempt"] == 1
                waited = restarted["epoch"] - exited["epoch"]
                print(f"FLEET {victim}: killed -> exit seen {exited['epoch'] - killed_at:.3f} s, "
                      f"backoff {scheduled['delay_s']:.3f} s, exit -> restarted {waited:.3f} s")
                assert waited <= RESTART_BASE_S + SLACK_S, (victim, waited)
                assert restarted["pid"] != first_pids[victim] and restarted["restarts"] == 1
            assert fleet.events("collector_exited", "fleet-c") == []
            new_pids = {c: fleet.collector(c)["pid"] for c in groups}
            wait_until(lambda: all((b := beats.latest(c)) and b.pid == new_pids[c] and b.last_trade_at
                                   for c in groups), 60, "the restarted collectors beating with trades")
            restart_exchange_time = _exchange_now(url)
            wait_until(lambda: all((b := beats.latest(c)) and b.last_trade_at >= restart_exchange_time
                                   for c in groups), 30, "every collector archiving after the restarts")
            # the bars compared below must reach well past the restarts, however fast this machine got here
            wait_until(lambda: _exchange_now(url) >= restart_exchange_time + timedelta(minutes=8), 30,
                       "eight exchange minutes past the restarts")

            # the project clock of `fleet status` (heartbeat ages) on the exchange's time; the exchange keeps
            # running until the collectors stopped, or their clocks would run past a pinned exchange
            on_exchange_time = {**env, ENV_FAKE_NOW: fake_now_value(_exchange_now(url))}
            code, shown, _ = fleet.cli_status("--check", env=on_exchange_time)
            assert code == 0 and shown["healthy"] and shown["redis"] == "ok", shown
            for collector_id, collector in shown["collectors"].items():
                assert collector["state"] == "running"
                assert collector["pid"] == fleet.collector(collector_id)["pid"]
                assert collector["restarts"] == (0 if collector_id == "fleet-c" else 1)
                assert collector["heartbeat_age_s"] is not None and collector["heartbeat_age_s"] < 300
            assert shown["collectors"]["fleet-a"]["last_exit_code"] == -signal.SIGKILL
            all_pids = set(first_pids.values()) | {c["pid"] for c in shown["collectors"].values()}

            assert fleet.terminate() == 0
            pinned_us = pin(url)  # every collector has stopped: the exchange's last instant of the test
            assert not [pid for pid in all_pids if pid_alive(pid)], "a collector outlived the fleet"
            final = fleet.status()
            assert final["supervisor"]["state"] == "stopped"
            assert {c["state"] for c in final["collectors"].values()} == {"stopped"}
            assert {c["last_exit_code"] for c in final["collectors"].values()} == {0}  # graceful: exit 0
        finally:
            fleet.close()

        end_the_day(url, env, monkeypatch)
        result = dg.materialize(ASSETS, partition_key=DAY.isoformat(),
                                instance=dg.DagsterInstance.ephemeral(), resources=resources())
    assert result.success
    # Compared: every minute up to the fleet's stop (a clean stop vouches for nothing after the
    # collectors' sessions closed, so the minutes around it are covered by gaps and recovered).
    compared_until = datetime.fromtimestamp(pinned_us / 1e6, UTC).replace(second=0, microsecond=0)
    assert compared_until > restart_exchange_time + timedelta(minutes=5)  # the kill's window is inside
    expected = truth_bars(SimDay(DAY, seed=SEED, symbols=SYMBOLS)).filter(pl.col("minute") < compared_until)
    final_bars = lake.read_partition("minute_bars", DAY).filter(pl.col("minute") < compared_until)
    got = final_bars.select(expected.columns).sort("symbol", "minute")
    for symbol in groups["fleet-a"] + groups["fleet-b"] + groups["fleet-c"]:
        want = expected.filter(pl.col("symbol") == symbol).sort("minute")
        mine = got.filter(pl.col("symbol") == symbol)
        assert mine.height > 10 and mine.equals(want), (  # > 10: the comparison saw a real stretch
            symbol, compared_until, want.join(mine, on=want.columns, how="anti").to_dicts(),
            mine.join(want, on=want.columns, how="anti").to_dicts())
    # the kill's hole was real and was filled from the broker: each victim has bars from REST between the
    # kill and the restart, while the survivor's bars there all come from its own ticks
    window = final_bars.filter(pl.col("minute").is_between(kill_exchange_time.astimezone(UTC),
                                                           restart_exchange_time.astimezone(UTC)))
    sources = dict(window.group_by("symbol").agg(pl.col("source").unique()).iter_rows())
    for victim in ("fleet-a", "fleet-b"):
        assert any("rest_kis" in sources.get(s, []) for s in groups[victim]), (victim, sources)
    assert all(set(sources[s]) == {"ticks"} for s in groups["fleet-c"] if s in sources), sources
