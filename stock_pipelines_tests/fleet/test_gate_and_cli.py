"""What the fleet reads from Redis (the kill switch, dormant mode) on a real Redis, and the
`fleet` commands' refusals: an invalid fleet file, a status file that is not there."""

from __future__ import annotations

import json
import time
from datetime import date

import redis

from stock_pipelines.cli import main
from stock_pipelines.fleet.gate import FleetGate
from stock_pipelines.fleet.status import STALE_AFTER_S, health_problems
from stock_pipelines.redis_conn import RedisSettings, configure
from stock_pipelines.resilience.dormant import DormantGuard
from stock_pipelines.resilience.flags import COLLECTORS, FeatureFlags
from stock_pipelines.resilience.state_store import RedisStateStore
from stock_pipelines_tests.past_day import pin_clock_after


def test_the_gate_reads_the_switch_and_dormant_mode_at_every_call(redis_server, monkeypatch):
    monkeypatch.delenv(COLLECTORS, raising=False)
    client = redis_server.client()
    gate = FleetGate(lambda: client)
    assert gate.read().collectors_enabled is True
    assert gate.read().switch_detail == f"{COLLECTORS} is on (default)"
    FeatureFlags(client).set(COLLECTORS, False)
    reading = gate.read()
    assert (reading.collectors_enabled, reading.switch_detail) == (False, f"{COLLECTORS} is off (redis)")
    FeatureFlags(client).set(COLLECTORS, True)
    DormantGuard(RedisStateStore(client)).enter("ten failed recoveries")
    reading = gate.read()
    assert reading.collectors_enabled is True and reading.dormant
    assert reading.dormant_reason == "ten failed recoveries (by automatic)"
    client.set(f"sp:flags:{COLLECTORS}", "maybe")  # a typo is not guessed at
    reading = gate.read()
    assert reading.collectors_enabled is False and "neither on" in reading.switch_detail
    # the deployment's "off" (the fleet command's settings, read from its environment at start) wins
    configure(RedisSettings(switches={COLLECTORS: "off"}))
    FeatureFlags(client).set(COLLECTORS, True)
    assert FleetGate(lambda: client).read().switch_detail == f"{COLLECTORS} is off (env)"


def test_an_unreachable_redis_leaves_the_fleet_as_it_is(monkeypatch):
    monkeypatch.delenv(COLLECTORS, raising=False)
    gone = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5)
    reading = FleetGate(lambda: gone).read()
    assert reading.collectors_enabled is None and reading.switch_detail.startswith(f"{COLLECTORS} unknown")


def test_an_invalid_fleet_file_exits_2_naming_each_problem(tmp_path, capsys):
    bad = tmp_path / "fleet.yaml"
    bad.write_text("collectors:\n  - id: a\n    symbols: [000660]\n    sorce: kis\n")
    assert main(["fleet", "run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "stock-pipelines fleet: error: invalid fleet file"
    assert err[1:] == [
        (f'{bad}: collectors[0] (a).symbols: quote every code ("005930"): '
         "YAML reads unquoted digits as numbers"),
        f"{bad}: collectors[0] (a).sorce: unknown field (a typo?)",
    ]
    assert main(["fleet", "run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read (No such file or directory)" in capsys.readouterr().err


def test_status_without_a_running_fleet(tmp_path, monkeypatch, capsys):
    pin_clock_after(monkeypatch, date(2026, 11, 20))  # heartbeat ages are on the project clock
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path))
    assert main(["fleet", "status"]) == 1
    assert capsys.readouterr().err.startswith(
        f"stock-pipelines fleet status: no fleet status at {tmp_path / 'fleet' / 'status.json'}")
    stale = {"supervisor": {"state": "running", "updated_epoch": time.time() - STALE_AFTER_S - 5},
             "collectors": {"a": {"id": "a", "state": "running", "last_exit_reason": None}}}
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "status.json").write_text(json.dumps(stale))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    assert main(["fleet", "status"]) == 0  # without --check: the document, whatever it says
    shown = json.loads(capsys.readouterr().out)
    assert shown["redis"].startswith("unreachable") and shown["collectors"]["a"]["heartbeat_age_s"] is None
    assert not shown["healthy"] and shown["problems"][0].startswith("the status file was last written")
    assert main(["fleet", "status", "--check"]) == 1
    assert health_problems({**stale, "supervisor": {"state": "running", "updated_epoch": time.time()}},
                           time.time()) == []
