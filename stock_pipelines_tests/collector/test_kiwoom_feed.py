"""The real collector CLI on the Kiwoom feed, and failing over from KIS to Kiwoom and back, against
a real `sim exchange` serving both brokers: the archive equals the exchange's trades for the window,
each (symbol, cum) once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stock_pipelines.collector.status import read_status
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.waiting import wait_until

from .conftest import DAY, admin, archived, assert_missing_inside_windows, keys, pin, seoul, truth
from .test_process import APP_KEY, APP_SECRET, COMMAND, wait_streaming

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

KIWOOM_KEY, KIWOOM_SECRET = "kiwoom-key", "kiwoom-secret-do-not-log"
CREDENTIALS = {APP_KEY: APP_SECRET, KIWOOM_KEY: KIWOOM_SECRET}


def _env(tmp_path: Path, url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIS_", "KIWOOM_", "STOCK_PIPELINES_", "REDIS_URL"))}
    env.update(
        KIS_BASE_URL=str(url), KIS_APP_KEY=APP_KEY, KIS_APP_SECRET=APP_SECRET,
        KIWOOM_BASE_URL=str(url), KIWOOM_APP_KEY=KIWOOM_KEY, KIWOOM_SECRET_KEY=KIWOOM_SECRET,
        REDIS_URL=redis_url, STOCK_PIPELINES_DATA_DIR=str(tmp_path / "data"),
        STOCK_PIPELINES_ARCHIVE_DIR=str(tmp_path / "archive"),
        STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES="1", STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.1",
        STOCK_PIPELINES_COLLECTOR_CLOCK="exchange", STOCK_PIPELINES_COLLECTOR_BACKOFF_BASE_S="0.05",
        STOCK_PIPELINES_COLLECTOR_BACKOFF_CAP_S="0.3",
    )
    env.update(extra)
    return env


def _start(env: dict[str, str], symbols: list[str], collector_id: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen([*COMMAND, "--symbols", ",".join(symbols), "--id", collector_id, *options],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(client, collector_id: str) -> dict:
    return read_status(client, collector_id).get(collector_id) or {}


def _drain(client, collector_id: str) -> None:
    """Wait until the collector has archived what the (pinned) exchange sent."""
    seen: list[int] = []

    def quiet() -> bool:
        seen.append(_status(client, collector_id).get("seq", -1))
        return len(seen) > 8 and len(set(seen[-8:])) == 1  # unchanged for 8 status reads (~0.8 s)

    wait_until(quiet, 20, "the collector to take in what the exchange sent", every=0.1)


def _drain_and_stop(process: subprocess.Popen, client, collector_id: str) -> str:
    """Drain, then SIGTERM: exit 0."""
    _drain(client, collector_id)
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    return process.stderr.read()


def _journal(tmp_path: Path, collector_id: str) -> list[dict]:
    path = tmp_path / "archive" / collector_id / "system" / f"{DAY:%Y%m%d}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _loss_windows(tmp_path: Path, collector_id: str) -> list[dict]:
    return [e["detail"] for e in _journal(tmp_path, collector_id) if e["event"] == "LOSS_WINDOW"]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_the_kiwoom_feed_archives_exactly_the_exchanges_trades(tmp_path, redis_server):
    client = redis_server.client()
    start = seoul(10, 0)
    with run_exchange(day=DAY, seed=21, symbols=12, start=start, pinned=True, speed=60,
                      credentials=CREDENTIALS, ping_interval_s=0.5) as url:
        codes = list(url.exchange.day.codes)
        env = _env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_MAX_SUBSCRIPTIONS="5")
        process = _start(env, codes, "kw-1", "--source", "kiwoom")
        try:
            started = wait_streaming(process, client, "kw-1")
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(3.0)  # three minutes of session at 60x
            until = pin(url)
            stderr = _drain_and_stop(process, client, "kw-1")
        finally:
            _stop(process)
        stats = admin(url, "/admin/stats", None)
    assert started["brokers"] == ["kiwoom"] and started["shards"] == 3  # 12 symbols, 5 a session
    assert KIWOOM_SECRET not in stderr
    expected = truth(url.exchange.day, until, start)
    result = archived(tmp_path / "archive")
    assert len(expected) > 500
    assert keys(result) == set(expected)  # every trade of the window, and nothing else
    assert result.stats.duplicates == 0 and result.stats.quarantined == 0
    assert set(result.ticks["source"].unique()) == {"kiwoom"}
    assert stats["kiwoom_ws_trades_sent"] == len(expected) and stats.get("ws_trades_sent", 0) == 0
    assert stats["kiwoom_ws_ping_echoes"] > 0  # the collector echoed the server's PINGs
    status = _status(client, "kw-1")
    assert status["broker"] == "kiwoom" and status["counters"]["validate"]["bad_frames"] == 0


def _fail_over_and_back(tmp_path: Path, redis_url: str, client, collector_id: str, seed: int, start,
                        paused: bool) -> tuple[dict[tuple[str, int], int], set[tuple[str, int]], dict]:
    """A collector on `--source kis --fallback kiwoom --standby cold` (hot standby, the default, is
    in test_hot_standby.py): KIS fails alone (its sessions drop, and its
    approval key is refused), the collector fails over to Kiwoom; KIS recovers while the market
    runs, the collector probes it and fails back make-before-break. With `paused`, the exchange is
    paused while the collector notices KIS's break and switches. (truth, archived keys, status)."""
    with run_exchange(day=DAY, seed=seed, symbols=8, start=start, pinned=True, speed=60,
                      credentials=CREDENTIALS) as url:
        env = _env(tmp_path, url, redis_url, STOCK_PIPELINES_COLLECTOR_FAILOVER_AFTER="2",
                   STOCK_PIPELINES_COLLECTOR_FAILBACK_PROBE_S="0.5")
        process = _start(env, list(url.exchange.day.codes), collector_id,
                         "--source", "kis", "--fallback", "kiwoom", "--standby", "cold")
        try:
            shards = wait_streaming(process, client, collector_id)["shards"]
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.5)
            if paused:
                pin(url)
                _drain(client, collector_id)  # what KIS sent up to the pause is in before it breaks
            admin(url, "/admin/faults", {"mode": "drop_ws", "target": "kis"})
            admin(url, "/admin/faults", {"mode": "unauthorized", "target": "kis"})
            wait_until(lambda: (s := _status(client, collector_id)).get("broker") == "kiwoom"
                       and s["connected"] == shards, 20, "failover to Kiwoom, every shard on it")
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.5)
            assert admin(url, "/admin/stats", None)["kiwoom_ws_trades_sent"] > 0
            admin(url, "/admin/faults", {"mode": "none"})
            wait_until(lambda: (s := _status(client, collector_id)).get("broker") == "kis"
                       and s["failover"] == "primary" and s["connected"] == shards, 20, "failback")
            wait_until(lambda: admin(url, "/admin/stats", None)["ws_open"] == shards, 10,
                       "the Kiwoom sessions released")
            time.sleep(1.0)
            until = pin(url)
            _drain_and_stop(process, client, collector_id)
        finally:
            _stop(process)
        expected = truth(url.exchange.day, until, start)
    result = archived(tmp_path / "archive")
    assert result.stats.duplicates == 0 and result.stats.quarantined == 0  # never archived twice
    assert set(result.ticks["source"].unique()) == {"kis", "kiwoom"}
    status = _status(client, collector_id)
    assert [(e["kind"], e["from_broker"], e["to_broker"]) for e in status["switch_log"]] == [
        ("FAILOVER", "kis", "kiwoom"), ("FAILBACK", "kiwoom", "kis")]
    # Kiwoom was subscribed on KIS's first failure, before the switch (the switch found it streaming)
    events = [e["event"] for e in _journal(tmp_path, collector_id) if e["event"] in ("STANDBY", "FAILOVER")]
    assert events == ["STANDBY", "FAILOVER"]
    return expected, keys(result), status


def test_failover_from_kis_to_kiwoom_and_back_loses_no_trade(tmp_path, redis_server):
    expected, got, status = _fail_over_and_back(tmp_path, redis_server.url, redis_server.client(), "fo-1", 22,
                                                seoul(11, 0), paused=True)
    assert got == set(expected)  # no trade lost, none archived twice
    assert status["counters"]["guard"]["duplicates"] > 0  # the fail-back overlap, dropped by cum
    # The drop opens a possible-loss window (the collector cannot know the paused exchange sent
    # nothing), closed by Kiwoom's first trade; the fail-back overlapped the feeds: no window.
    windows = _loss_windows(tmp_path, "fo-1")
    assert windows and {(w["reason"], w["source"]) for w in windows} == {("dropped", "secondary")}


def test_failover_while_the_market_runs_reports_its_gap_and_fails_back_without_loss(tmp_path, redis_server):
    """The same switches with the exchange running throughout: what KIS's break costs before Kiwoom
    is subscribed is inside the reported loss windows (left to recovery); the fail-back loses nothing."""
    expected, got, status = _fail_over_and_back(tmp_path, redis_server.url, redis_server.client(), "fo-2", 23,
                                                seoul(13, 0), paused=False)
    windows = [(w["from_us"], w["to_us"]) for w in _loss_windows(tmp_path, "fo-2")]
    missing = assert_missing_inside_windows(expected, got, windows)
    failback_us = int(status["switch_log"][1]["at_us"])
    assert all(expected[k] < failback_us for k in missing)  # nothing lost failing back
    print(f"live failover: {len(missing)} of {len(expected)} trades in the reported loss windows")
