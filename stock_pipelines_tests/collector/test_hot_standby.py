"""Hot standby: the real collector CLI on `--source kis --fallback kiwoom` streams both brokers
from a real `sim exchange` with the market running, and archives each trade once. A fault of one
broker alone (dropped sessions, refused credentials) loses no trade: the archive's lines are
exactly the exchange's trades over the whole window, with no loss window reported."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.dagster_dev import free_port
from stock_pipelines_tests.waiting import wait_until

from .conftest import DAY, admin, archived, keys, pin, seoul, truth
from .test_kiwoom_feed import CREDENTIALS, _drain_and_stop, _env, _journal, _start, _status, _stop
from .test_process import wait_streaming

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _trade_lines(root: Path, collector_id: str) -> int:
    return sum(len(path.read_text().splitlines())
               for path in (root / collector_id / "trades" / f"{DAY:%Y%m%d}").glob("*.jsonl"))


def _metric(port: int, name: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return values[0] if values else None


def _fault(url, mode: str, target: str) -> None:
    admin(url, "/admin/faults", {"mode": mode, "target": target})


def _assert_every_trade_once(tmp_path: Path, collector_id: str, expected: dict) -> None:
    result = archived(tmp_path / "archive")
    got = keys(result)
    missing = sorted(expected[k] for k in set(expected) - got)
    events = [(e["event"], e.get("detail", {}).get("source"), e["at"])
              for e in _journal(tmp_path, collector_id) if e["event"] not in ("HEARTBEAT", "BAD_FRAME")]
    assert not missing, f"{len(missing)} trades lost, executed {missing[0]}..{missing[-1]}; events {events}"
    assert got == set(expected)  # every trade of the window, nothing else
    assert _trade_lines(tmp_path / "archive", collector_id) == len(expected)  # each on one line only
    assert result.stats.duplicates == 0 and result.stats.quarantined == 0
    assert not [e for e in _journal(tmp_path, collector_id) if e["event"] == "LOSS_WINDOW"]


def test_kis_failing_alone_fails_over_to_the_hot_kiwoom_feed_and_back_losing_nothing(tmp_path, redis_server):
    client, cid = redis_server.client(), "hot-1"
    start = seoul(11, 0)
    with run_exchange(day=DAY, seed=31, symbols=8, start=start, pinned=True, speed=60,
                      credentials=CREDENTIALS) as url:
        env = _env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FAILOVER_AFTER="2")
        process = _start(env, list(url.exchange.day.codes), cid, "--source", "kis", "--fallback", "kiwoom")
        try:
            shards = wait_streaming(process, client, cid)["shards"]
            wait_until(lambda: _status(client, cid).get("standby_live") is True, 20, "the Kiwoom standby live")
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.5)
            _fault(url, "drop_ws", "kis")  # KIS's sessions drop and its approval key is refused
            _fault(url, "unauthorized", "kis")
            wait_until(lambda: (s := _status(client, cid)).get("broker") == "kiwoom"
                       and s["connected"] == shards, 20, "failover to Kiwoom")
            on_kiwoom = _status(client, cid)
            time.sleep(1.5)
            admin(url, "/admin/faults", {"mode": "none"})
            wait_until(lambda: (s := _status(client, cid)).get("broker") == "kis"
                       and s["failover"] == "primary" and s.get("standby_live") is True, 20, "failback to KIS")
            time.sleep(1.0)
            until = pin(url)
            _drain_and_stop(process, client, cid)
        finally:
            _stop(process)
        expected = truth(url.exchange.day, until, start)
    assert len(expected) > 1_000
    _assert_every_trade_once(tmp_path, cid, expected)
    assert on_kiwoom["standby"] == "hot" and on_kiwoom["standby_broker"] == "kis"
    status = _status(client, cid)
    assert [(e["kind"], e["from_broker"], e["to_broker"]) for e in status["switch_log"]] == [
        ("FAILOVER", "kis", "kiwoom"), ("FAILBACK", "kiwoom", "kis")]
    by_broker = status["counters"]["sink"]["by_broker"]
    assert by_broker["kiwoom"] > 0 and by_broker["kis"] > 0  # Kiwoom wrote while KIS was down
    assert status["counters"]["guard"]["duplicates"] > 1_000  # both feeds streamed: each trade seen twice


def test_a_kiwoom_fault_while_kis_is_primary_loses_nothing_and_shows_the_standby_down(tmp_path, redis_server):
    client, cid, port = redis_server.client(), "hot-2", free_port()
    start = seoul(13, 0)
    with run_exchange(day=DAY, seed=32, symbols=8, start=start, pinned=True, speed=60,
                      credentials=CREDENTIALS) as url:
        env = _env(tmp_path, url, redis_server.url)
        process = _start(env, list(url.exchange.day.codes), cid, "--source", "kis", "--fallback", "kiwoom",
                         "--metrics-port", str(port))
        try:
            wait_streaming(process, client, cid)
            wait_until(lambda: _status(client, cid).get("standby_live") is True, 20, "the Kiwoom standby live")
            assert _metric(port, "stock_pipelines_collector_standby_live") == 1.0
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.0)
            _fault(url, "drop_ws", "kiwoom")  # every Kiwoom session is closed as soon as it subscribes
            wait_until(lambda: _status(client, cid).get("standby_live") is False, 20, "the standby reported down")
            down = _status(client, cid)
            wait_until(lambda: _metric(port, "stock_pipelines_collector_standby_live") == 0.0, 20,
                       "/metrics showing the standby down")
            time.sleep(1.5)
            admin(url, "/admin/faults", {"mode": "none"})
            wait_until(lambda: _status(client, cid).get("standby_live") is True, 20, "the standby back")
            time.sleep(0.5)
            until = pin(url)
            _drain_and_stop(process, client, cid)
        finally:
            _stop(process)
        expected = truth(url.exchange.day, until, start)
    assert len(expected) > 500
    _assert_every_trade_once(tmp_path, cid, expected)
    assert down["broker"] == "kis" and down["failover"] == "primary" and down["standby_broker"] == "kiwoom"
    assert _status(client, cid)["switch_log"] == []  # the primary never failed
    journal = _journal(tmp_path, cid)
    events = [e["event"] for e in journal if e["event"].startswith("STANDBY_")]
    assert events[0] == "STANDBY_DOWN" and events[-1] == "STANDBY_LIVE"  # down, and back at the end
    dropped = [e["detail"] for e in journal if e["event"] == "DISCONNECTED"]
    assert dropped and {d["source"] for d in dropped} == {"secondary"}  # only Kiwoom's sessions failed


def test_kis_stalling_alone_is_noticed_beside_the_streaming_standby_and_loses_nothing(tmp_path, redis_server):
    """KIS stays connected but sends nothing: the collector's own watchdog, fed by Kiwoom, cannot see
    it; the per-source watch does (STALLED alone), reconnects KIS and fails over, then back."""
    client, cid = redis_server.client(), "hot-3"
    start = seoul(10, 30)
    with run_exchange(day=DAY, seed=33, symbols=8, start=start, pinned=True, speed=60,
                      credentials=CREDENTIALS) as url:
        env = _env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FAILOVER_AFTER="2",
                   STOCK_PIPELINES_COLLECTOR_STALL_MINUTES="1")  # a wall second at 60x
        process = _start(env, list(url.exchange.day.codes), cid, "--source", "kis", "--fallback", "kiwoom")
        try:
            wait_streaming(process, client, cid)
            wait_until(lambda: _status(client, cid).get("standby_live") is True, 20, "the Kiwoom standby live")
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.0)
            _fault(url, "stall_ws", "kis")
            wait_until(lambda: _status(client, cid).get("broker") == "kiwoom", 20, "failover to Kiwoom")
            time.sleep(1.0)
            admin(url, "/admin/faults", {"mode": "none"})
            wait_until(lambda: (s := _status(client, cid)).get("broker") == "kis"
                       and s.get("standby_live") is True, 20, "failback to KIS")
            time.sleep(0.5)
            until = pin(url)
            _drain_and_stop(process, client, cid)
        finally:
            _stop(process)
        expected = truth(url.exchange.day, until, start)
    _assert_every_trade_once(tmp_path, cid, expected)
    stalls = [e["detail"] for e in _journal(tmp_path, cid) if e["event"] == "STALLED"]
    assert len(stalls) >= 2 and all(s.get("alone") and s["source"] == "primary" for s in stalls[:2])
    switches = _status(client, cid)["switch_log"]
    assert [e["kind"] for e in switches] == ["FAILOVER", "FAILBACK"] and "stalled" in switches[0]["reason"]
