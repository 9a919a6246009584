"""A clean stop (SIGTERM) of the real collector process against the simulator at 120x: its final
heartbeat vouches for nothing after its WebSocket sessions closed, so the gap detection covers
every minute the archive lacks and the day's minute_bars after recovery equal the truth."""

import signal

import pytest

from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.chaos.figures import bars_lost, run_pipeline
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SPEED, COLLECTOR = 120, "stopped-1"


def test_after_sigterm_no_minute_is_vouched_for_that_the_archive_lacks(tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    with run_exchange(day=DAY, seed=21, symbols=10, activity=0.5, start=seoul(8, 58), pinned=True,
                      speed=SPEED, credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.5")
        store = HeartbeatStore(client, clock=url.exchange.clock.now)
        process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
        try:
            wait_streaming(process, client, COLLECTOR)
            admin(url, "/admin/clock", {"pinned": False})
            wait_until(lambda: (b := store.latest(COLLECTOR)) and b.last_trade_at and b.last_trade_at >= seoul(9, 2),
                       30, "a heartbeat vouching for trades up to 09:02")
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0, process.stderr.read()[-2000:]
            stopped_at = pin(url)  # the exchange keeps trading until the test pins it: a later instant
        finally:
            stop(process)
        final = store.latest(COLLECTOR)
        assert final.at.timestamp() * 1e6 < stopped_at
        end_the_day(url, env, monkeypatch)
        run = run_pipeline()
        lost = bars_lost(url)
    assert run.result.success
    assert run.metadata["gaps"] > 0 and run.metadata["windows_unrecovered"] == 0
    assert lost == 0, f"{lost} bars differ from the truth; final beat at {final.at.isoformat()}"
