"""Chaos: the exchange keeps the collector's WebSocket open but stops sending (stall_ws). The
collector declares STALLED after `stall_minutes` of silence, reconnects, writes a LOSS_WINDOW
for the silent stretch, and the pipeline recovers every bar of it."""

import json
import time

import pytest

from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.heartbeat.model import LifecycleEvent
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.chaos.figures import (
    bars_lost,
    exchange_stats,
    record,
    run_pipeline,
    set_fault,
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
SPEED, COLLECTOR = 120, "stall-1"


def _loss_windows(archive) -> list[dict]:
    path = archive / COLLECTOR / "system" / f"{DAY:%Y%m%d}.jsonl"
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [e for e in events if e.get("event") == "LOSS_WINDOW"]


def _wait(condition, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout_s} s")


def test_stalled_feed_is_declared_reconnected_and_its_bars_recovered(tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    archive = tmp_path / "archive"
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=seoul(9, 30), pinned=True,
                      speed=SPEED, credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2",
                            STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.5",
                            STOCK_PIPELINES_COLLECTOR_STALL_MINUTES="2")  # 1 s wall at 120x
        store = HeartbeatStore(client, clock=url.exchange.clock.now)
        process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
        figures: dict[str, object] = {}
        try:
            wait_streaming(process, client, COLLECTOR)
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(1.5)
            set_fault(url, mode="stall_ws")
            figures["time_to_detect_s"] = _wait(
                lambda: any(e.event is LifecycleEvent.STALLED for e in store.read_events()[0]), 15, "STALLED")
            set_fault(url, mode="none")
            figures["loss_window_after_s"] = _wait(lambda: _loss_windows(archive), 15, "LOSS_WINDOW")
            time.sleep(1.0)
            process.terminate()
            process.wait(15)
        finally:
            stop(process)
        windows = _loss_windows(archive)
        pin(url)
        end_the_day(url, env, monkeypatch)

        run = run_pipeline()

        stats = exchange_stats(url)
        lost = bars_lost(url)
        record("WebSocket feed stalled", "STALLED, reconnected, bars recovered" if lost == 0 else "FAILED",
               bars_lost=lost, calls=run.calls, lower_bound_calls=run.metadata.get("lower_bound_calls"),
               rate_limited=stats["rate_limited"], retries=run.retries, time_to_recover_s=run.seconds,
               tick_bars=tick_bars_height(), gaps=run.metadata.get("gaps"),
               ws_connections=stats["ws_connections"], loss_windows=len(windows),
               exit_code=process.returncode, **figures)
    assert stats["ws_connections"] >= 2  # it reconnected
    assert windows and all(w["detail"]["reason"] == "stalled" for w in windows)
    assert run.result.success and run.metadata["windows_unrecovered"] == 0
    assert lost == 0
