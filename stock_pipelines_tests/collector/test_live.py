"""The collector against `sim exchange` over real WebSocket connections and a real Redis:
exact capture across shards, PINGPONG, a dropped and a stalled feed recovered with the loss
window reported, failover to a second source and back."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
import pytest

from stock_pipelines.collector.status import read_status
from stock_pipelines.heartbeat import HeartbeatStore, LifecycleEvent, Status
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.waiting import wait_until

from .conftest import (
    DAY,
    US,
    admin,
    archived,
    assert_missing_inside_windows,
    drain,
    fast_settings,
    keys,
    live_collector,
    loss_windows,
    pin,
    seoul,
    source,
    truth,
    wait_subscribed,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_a_session_is_archived_exactly_across_shards_with_pingpong(tmp_path, redis_server):
    start = seoul(8, 59)
    with run_exchange(day=DAY, seed=7, symbols=45, activity=0.5, start=start, pinned=True, speed=60,
                      ping_interval_s=0.3) as url:
        codes = list(url.exchange.day.codes)
        client = redis_server.client()
        with live_collector(url, codes, tmp_path / "archive", client, fast_settings()) as (
                collector, handle, clock):
            assert len(collector.shards) == 2  # 45 symbols need two sessions of at most 40
            wait_subscribed(handle, collector)
            admin(url, "/admin/clock", {"pinned": False})
            clock.sync()
            time.sleep(5.0)  # about five minutes of the open
            until = pin(url)
            drain(collector)
        stats = admin(url, "/admin/stats", None)

    expected = truth(url.exchange.day, until, start)
    result = archived(tmp_path / "archive")
    assert result.stats.duplicates == 0 and result.stats.quarantined == 0
    assert keys(result) == set(expected)  # every trade the exchange sent, once
    assert result.ticks.height == len(expected) > 1000
    assert stats["ws_connections"] == 2 and "ws_max_subscribe_over" not in stats
    assert stats["ws_trades_sent"] == len(expected)

    counters = collector.pipeline.counters
    assert counters.pingpong >= 1 and stats["ws_pingpong_echoes"] == counters.pingpong
    assert (counters.frames_bad, counters.duplicates, counters.cum_gaps) == (0, 0, 0)
    assert counters.archived == counters.records_in == len(expected)
    assert not loss_windows(collector)

    status = read_status(client, "live-1")["live-1"]  # what `stock-pipelines collector status` prints
    assert status["state"] == "stopped" and status["counters"]["sink"]["archived"] == len(expected)
    store = HeartbeatStore(client)
    assert store.latest("live-1").status is Status.STOPPING
    events, _ = store.read_events()
    assert [e.event for e in events] == [LifecycleEvent.UP, LifecycleEvent.DOWN]
    assert store.up_intervals("live-1", DAY)  # beats on the exchange's day


def test_a_dropped_connection_is_recovered_and_the_loss_window_reported(tmp_path, redis_server):
    start = seoul(9, 10)
    with run_exchange(day=DAY, seed=8, symbols=12, start=start, pinned=True, speed=60) as url:
        codes = list(url.exchange.day.codes)
        with live_collector(url, codes, tmp_path / "archive", redis_server.client(), fast_settings()) as (
                collector, handle, clock):
            wait_subscribed(handle, collector)
            admin(url, "/admin/clock", {"pinned": False})
            clock.sync()
            time.sleep(1.5)
            admin(url, "/admin/faults", {"mode": "drop_ws"})
            time.sleep(1.0)
            admin(url, "/admin/faults", {"mode": "none"})
            handle.wait_for(lambda: loss_windows(collector), 15, "a loss window")
            time.sleep(1.0)
            until = pin(url)
            drain(collector)

    disconnects = [e for e in collector.events if e["event"] == "DISCONNECTED"]
    assert disconnects and disconnects[0]["reason"] == "dropped"
    windows = loss_windows(collector)
    assert len(windows) == 1 and windows[0][0] < windows[0][1]
    result = archived(tmp_path / "archive")
    assert result.stats.duplicates == 0
    missing = assert_missing_inside_windows(truth(url.exchange.day, until, start), keys(result), windows)
    assert missing  # the drop really cost trades, all of them inside the reported window
    assert result.ticks["ts"].max().timestamp() * 1e6 > windows[0][1]  # and trades came again after it


def test_a_stalled_feed_is_declared_stalled_reconnected_and_reported(tmp_path, redis_server):
    start = seoul(10, 0)
    with run_exchange(day=DAY, seed=9, symbols=12, start=start, pinned=True, speed=60) as url:
        codes = list(url.exchange.day.codes)
        client = redis_server.client()
        settings = fast_settings(stall_minutes=1.0)  # one exchange minute: one wall second at speed 60
        with live_collector(url, codes, tmp_path / "archive", client, settings) as (collector, handle, clock):
            wait_subscribed(handle, collector)
            admin(url, "/admin/clock", {"pinned": False})
            clock.sync()
            time.sleep(1.0)
            admin(url, "/admin/faults", {"mode": "stall_ws"})
            handle.wait_for(lambda: collector.stalls >= 1, 10, "a stall")
            assert collector.status is Status.STALLED
            admin(url, "/admin/faults", {"mode": "none"})
            handle.wait_for(lambda: loss_windows(collector), 15, "a loss window")
            time.sleep(1.0)
            until = pin(url)
            drain(collector)
        sessions = admin(url, "/admin/stats", None)["ws_connections"]

    assert sessions >= 2  # the watchdog made it reconnect
    events, _ = HeartbeatStore(client).read_events()
    stalled = [e for e in events if e.event is LifecycleEvent.STALLED]
    assert stalled and stalled[0].detail["silent_s"] >= 60
    windows = loss_windows(collector)
    assert windows and all(e["reason"] == "stalled" for e in collector.events if e["event"] == "LOSS_WINDOW")
    result = archived(tmp_path / "archive")
    missing = assert_missing_inside_windows(truth(url.exchange.day, until, start), keys(result), windows)
    assert missing and result.stats.duplicates == 0


def test_failover_to_the_secondary_and_failback_to_the_primary(tmp_path, redis_server):
    start = seoul(11, 0)
    config = dict(day=DAY, seed=10, symbols=8, start=start, pinned=True, speed=60)
    with run_exchange(**config) as primary, run_exchange(**config) as secondary:
        codes = list(primary.exchange.day.codes)
        client = redis_server.client()
        sources = [source(primary), source(secondary, "secondary", "key-2")]
        settings = fast_settings(failover_after=3, standby="cold")  # the hot one: test_hot_standby.py
        with live_collector(primary, codes, tmp_path / "archive", client, settings, sources) as (
                collector, handle, clock):
            wait_subscribed(handle, collector)
            with httpx.Client(timeout=5) as http:  # release both clocks together
                for url in (primary, secondary):
                    http.post(f"{url}/admin/clock", json={"pinned": False}).raise_for_status()
            clock.sync()
            time.sleep(1.0)
            admin(primary, "/admin/faults", {"mode": "drop_ws"})
            handle.wait_for(lambda: collector.selector.name == "secondary", 15, "failover")
            wait_subscribed(handle, collector, "secondary")
            time.sleep(1.0)
            admin(primary, "/admin/faults", {"mode": "none"})
            handle.wait_for(lambda: collector.selector.name == "primary", 15, "failback")
            wait_subscribed(handle, collector, "primary")
            handle.wait_for(lambda: not any("secondary" in s.connected for s in collector.shards), 10,
                            "the secondary released")
            time.sleep(1.0)
            until = pin(primary)  # the active source at the end: what it streamed is what must be there
            pin(secondary)
            drain(collector)
        sent_by_secondary = admin(secondary, "/admin/stats", None)["ws_trades_sent"]

    assert [(s.from_source, s.to_source) for s in collector.selector.switches] == [
        ("primary", "secondary"), ("secondary", "primary")]
    switch_log = read_status(client, "live-1")["live-1"]["switch_log"]
    assert [entry["kind"] for entry in switch_log] == ["FAILOVER", "FAILBACK"]
    assert sent_by_secondary > 0  # trades really came from the secondary meanwhile
    result = archived(tmp_path / "archive")
    assert result.stats.duplicates == 0  # the overlap of make-before-break was dropped by the guard
    missing = assert_missing_inside_windows(truth(primary.exchange.day, until, start), keys(result),
                                            loss_windows(collector))
    expected = truth(primary.exchange.day, until, start)
    failback_us = int(collector.selector.switches[1].at * US)
    assert all(expected[k] < failback_us for k in missing)  # fail-back overlapped the streams: no loss


def test_idle_with_heartbeats_outside_trading_time_and_primed_from_0855(tmp_path, redis_server):
    with run_exchange(day=DAY, seed=11, symbols=4, start=seoul(20, 0), speed=60) as url:
        client = redis_server.client()
        codes = list(url.exchange.day.codes)
        with live_collector(url, codes, tmp_path / "archive", client, fast_settings()) as (
                collector, handle, clock):
            store = HeartbeatStore(client)

            def beat_at_or_after(moment):
                return lambda: (b := store.latest("live-1")) is not None and b.at >= moment and b

            # a beat a minute into the night (one wall second at speed 60): the collector is running
            beats = wait_until(beat_at_or_after(seoul(20, 1)), 15, "a heartbeat from 20:01 on")
            night = admin(url, "/admin/stats", None)
            assert collector.state == "idle" and night.get("ws_connections", 0) == 0
            assert night["calls"] == {}  # not even an approval key
            assert beats.status is Status.STARTING

            saturday = seoul(8, 54, 30).replace(day=21)
            admin(url, "/admin/clock", {"at": saturday.isoformat()})
            clock.sync()
            # past Saturday's 08:55 (when a session day would be primed): still no connection
            wait_until(beat_at_or_after(saturday + timedelta(minutes=1)), 15, "a heartbeat from Saturday 08:55:30 on")
            assert admin(url, "/admin/stats", None).get("ws_connections", 0) == 0

            admin(url, "/admin/clock", {"at": seoul(8, 54).isoformat()})  # the session day, unprimed
            clock.sync()
            wait_until(beat_at_or_after(seoul(8, 54, 5)), 15, "a heartbeat from the session day's 08:54:05 on")
            connections = admin(url, "/admin/stats", None).get("ws_connections", 0)
            still_before = datetime.fromisoformat(admin(url, "/admin/clock", None)["now"]) < seoul(8, 55)
            assert still_before, "the exchange clock passed 08:55 before the check (machine too slow to tell)"
            assert connections == 0
            wait_subscribed(handle, collector)  # 08:55 comes a wall second later at speed 60
            assert clock.now() >= seoul(8, 55).timestamp()
    assert [e["event"] for e in collector.events][:1] == ["UP"]


def test_run_for_demo_archives_through_the_closing_print(tmp_path, redis_server):
    from stock_pipelines.collector.demo import run_for_demo

    with run_exchange(day=DAY, seed=14, symbols=6, start=(start := seoul(15, 17)), speed=120) as url:
        session = url.exchange.day.session
        result = run_for_demo(str(url), list(url.exchange.day.codes), session.close + timedelta(minutes=1),
                              tmp_path / "archive", app_key="demo-key", app_secret="demo-secret",
                              redis_client=redis_server.client(), timeout_s=30)
        expected = truth(url.exchange.day, int(session.close.timestamp() * US) + 1, start)
    got = archived(tmp_path / "archive")
    assert result.archived == got.ticks.height and result.events[-1]["event"] == "DOWN"
    # the exchange ran from 15:17 while the collector started: only trades before its first are missing
    first_us = int(got.ticks["ts"].min().timestamp() * US)
    assert keys(got) <= set(expected)
    assert all(expected[k] <= first_us + 2 * US for k in set(expected) - keys(got))
    finals = {code: int(url.exchange.day.trades(code).cum[-1]) for code in url.exchange.day.codes}
    assert {(code, cum) for code, cum in finals.items()} <= keys(got)


def test_a_redis_outage_loses_no_trade_and_heartbeats_resume(tmp_path, redis_server):
    start = seoul(10, 30)
    with run_exchange(day=DAY, seed=15, symbols=6, start=start, pinned=True, speed=60) as url:
        client = redis_server.client(socket_timeout=1, socket_connect_timeout=1)
        codes = list(url.exchange.day.codes)
        with live_collector(url, codes, tmp_path / "archive", client, fast_settings()) as (
                collector, handle, clock):
            wait_subscribed(handle, collector)
            admin(url, "/admin/clock", {"pinned": False})
            clock.sync()
            time.sleep(0.5)
            redis_server.kill()
            archived_then = collector.pipeline.counters.archived
            time.sleep(1.5)
            assert collector.publisher.failures > 0  # beats failed, counted, and the collector went on
            assert collector.pipeline.counters.archived > archived_then
            redis_server.start()  # back, empty
            handle.wait_for(lambda: HeartbeatStore(client).latest("live-1") is not None, 10, "a beat after")
            until = pin(url)
            drain(collector)
    result = archived(tmp_path / "archive")
    assert keys(result) == set(truth(url.exchange.day, until, start))  # nothing lost to the outage
    system = (tmp_path / "archive" / "live-1" / "system" / "20261120.jsonl").read_text()
    assert system.count('"HEARTBEAT"') > 10  # the archive kept the heartbeat history meanwhile


def test_an_unwritable_archive_stops_the_collector_instead_of_beating_on(tmp_path, redis_server):
    blocked = tmp_path / "archive" / "live-1" / "trades" / "20261120" / "10_00.jsonl"
    blocked.mkdir(parents=True)  # the 10:00 file cannot be opened: a directory sits at its path
    start = seoul(9, 59, 40)
    with run_exchange(day=DAY, seed=16, symbols=4, start=start, pinned=True, speed=60) as url:
        client = redis_server.client()
        codes = list(url.exchange.day.codes)
        with live_collector(url, codes, tmp_path / "archive", client, fast_settings()) as (
                collector, handle, clock):
            wait_subscribed(handle, collector)
            admin(url, "/admin/clock", {"pinned": False})
            clock.sync()
            handle.wait_for(lambda: collector.state == "stopped", 15, "the collector stopping itself")
    assert collector.fatal is not None and "10_00.jsonl" in collector.fatal
    events, _ = HeartbeatStore(client).read_events()
    assert events[-1].event is LifecycleEvent.DOWN and events[-1].detail == {"reason": "archive_error"}
    assert collector.pipeline.counters.archived > 0  # the 09:59 trades before the failure are there
    on_disk = archived(tmp_path / "archive").ticks
    # `archived` counts trades handed to the writer; those still buffered when the failing flush
    # hit the blocked 10:00 file are lost with the stop (the DOWN event makes it a downtime gap).
    # How many depends on the machine's load, so: every trade on disk was counted, none is from 10:00.
    assert 0 < on_disk.height <= collector.pipeline.counters.archived
    assert on_disk["ts"].max() < seoul(10, 0, 0)
