"""Chaos: the collector process is SIGKILLed, or SIGSTOPped (frozen: a zombie that holds its
sockets) and continued after more than three heartbeat intervals. Time to detect is from the
signal to HeartbeatStore.stale_collectors naming it (what the heartbeat sensor reads); then
the day goes through the pipeline and every bar the exchange has is back."""

import os
import signal
import time
from datetime import timedelta

import pytest

from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.chaos.figures import (
    bars_lost,
    exchange_stats,
    record,
    run_pipeline,
    tick_bars_height,
)
from stock_pipelines_tests.collector.conftest import DAY, admin, end_the_day, pin, seoul
from stock_pipelines_tests.collector.test_process import (
    APP_KEY,
    APP_SECRET,
    collector_env,
    start_collector,
    stop,
    wait_streaming,
)
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
SPEED, COLLECTOR = 120, "chaos-1"


def _wait_stale(store: HeartbeatStore, timeout_s: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if COLLECTOR in store.stale_collectors():
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    raise AssertionError(f"{COLLECTOR} never became stale within {timeout_s} s")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["SIGKILL", "SIGSTOP"])
def test_collector_signal_is_detected_and_its_bars_recovered(tmp_path, redis_server, monkeypatch, sig):
    client = redis_server.client()
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=seoul(8, 58), pinned=True,
                      speed=SPEED,
                      credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2",
                            # beats every 60 s of exchange time: the collector's estimate of the exchange
                            # clock trails it by ~0.5 s wall (60 s at 120x), more than 3 beats of 0.1 s
                            STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.5")
        store = HeartbeatStore(client, clock=url.exchange.clock.now)  # beats carry the exchange's time
        process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
        figures: dict[str, object] = {}
        try:
            wait_streaming(process, client, COLLECTOR)
            admin(url, "/admin/clock", {"pinned": False})
            # A healthy collector four minutes into the open. At 120x a collector lagging 1.5 wall
            # seconds behind the exchange (a loaded machine) is rightly stale: kill it only once fresh.
            wait_until(lambda: (b := store.latest(COLLECTOR)) and b.last_trade_at and b.last_trade_at >= seoul(9, 2)
                       and COLLECTOR not in store.stale_collectors(),
                       30, "a fresh heartbeat vouching for trades up to 09:02 (four minutes of the open)")
            last_trade_before = store.latest(COLLECTOR).last_trade_at
            os.kill(process.pid, sig)
            figures["time_to_detect_s"] = _wait_stale(store)
            figures["time_to_detect_exchange_s"] = round(figures["time_to_detect_s"] * SPEED)
            if sig == signal.SIGSTOP:
                os.kill(process.pid, signal.SIGCONT)
                resumed = time.monotonic()
                while COLLECTOR in store.stale_collectors() and time.monotonic() - resumed < 15:
                    time.sleep(0.05)
                figures["beats_resumed_after_s"] = round(time.monotonic() - resumed, 2)
                assert COLLECTOR not in store.stale_collectors(), "no heartbeat after SIGCONT"
                wait_until(lambda: store.latest(COLLECTOR).last_trade_at > last_trade_before + timedelta(minutes=1),
                           15, "a heartbeat vouching for trades a minute past the freeze (the feed resumed)")
                process.send_signal(signal.SIGTERM)
            process.wait(15)
        finally:
            stop(process)
        figures["exit_code"] = process.returncode
        pin(url)
        end_the_day(url, env, monkeypatch)

        run = run_pipeline()

        stats = exchange_stats(url)
        lost = bars_lost(url)
        expected = len(url.exchange.day.codes)
        outcome = "detected; bars recovered" if run.result.success and lost == 0 else "FAILED"
        record(f"collector {sig.name}", outcome,
               bars_lost=lost, calls=run.calls, lower_bound_calls=run.metadata.get("lower_bound_calls"),
               rate_limited=stats["rate_limited"], retries=run.retries, time_to_recover_s=run.seconds,
               tick_bars=tick_bars_height(), gaps=run.metadata.get("gaps"), symbols=expected, **figures)
    assert run.result.success
    assert run.metadata["gaps"] > 0 and run.metadata["windows_unrecovered"] == 0
    assert lost == 0
    assert stats["rate_limited"] == 0
