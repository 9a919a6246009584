"""A real collector process on a real `sim exchange` process lives from one trading day into the
next: Friday's last minutes and closing print, the weekend skipped, Monday's opening minutes (the
collector idles its connection over the night and connects again before the open). Each day's archive holds exactly that day's trades streamed in
the covered window (nothing lost, nothing doubled), in its own day's files."""

from __future__ import annotations

import json
import signal
from datetime import date, datetime

import httpx
import pytest

from stock_pipelines.archive.ticks import ingest_day
from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.waiting import wait_until

from .conftest import US, admin, keys
from .test_process import collector_env, start_collector, stop, wait_streaming

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FRIDAY, MONDAY = date(2026, 11, 20), date(2026, 11, 23)
SEED, SYMBOLS, SPEED = 31, 4, 120
START = datetime(2026, 11, 20, 15, 17, tzinfo=SEOUL)  # 3 min before the closing auction
UNTIL = datetime(2026, 11, 23, 9, 3, tzinfo=SEOUL)  # Monday's first minutes


def streamed(day: date, after_us: int, until_us: int) -> set[tuple[str, int]]:
    """(symbol, cum) of the day's trades with after_us < ts <= until_us: what a session subscribed
    while the exchange was pinned at after_us was sent up to until_us."""
    sim = SimDay(day, seed=SEED, symbols=SYMBOLS, eager=False)
    out = set()
    for code in sim.codes:
        trades = sim.trades(code, until_us=until_us)
        out |= {(code, int(c)) for c, ts in zip(trades.cum, trades.ts, strict=True) if ts > after_us}
    return out


def test_a_collector_started_on_friday_is_still_archiving_everything_on_monday(tmp_path, redis_server):
    client = redis_server.client()
    args = ["--date", FRIDAY.isoformat(), "--seed", str(SEED), "--symbols", str(SYMBOLS), "--start", "15:17",
            "--pin", "--speed", str(SPEED), "--overnight", "skip"]
    with run_exchange_process(args) as url:
        codes = ",".join(SimDay(FRIDAY, seed=SEED, symbols=SYMBOLS, eager=False).codes)
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2")
        process = start_collector(env, codes, "days-1")
        try:
            wait_streaming(process, client, "days-1")
            admin(url, "/admin/clock", {"pinned": False})
            wait_until(lambda: datetime.fromisoformat(admin(url, "/admin/clock")["now"]) >= UNTIL, 60,
                       "the exchange clock past Friday's close, the weekend and Monday's first minutes")
            pinned_at = int(datetime.fromisoformat(admin(url, "/admin/clock", {"pinned": True})["now"]).timestamp()
                            * US)
            monday = SimDay(MONDAY, seed=SEED, symbols=SYMBOLS, eager=False)
            last_trade_us = max(int(monday.trades(code, pinned_at).ts[-1]) for code in monday.codes)
            beats = HeartbeatStore(client)
            # a beat vouches only for archived trades: this one for every trade up to the pin
            wait_until(lambda: (b := beats.latest("days-1")) and b.last_trade_at
                       and b.last_trade_at.timestamp() * US >= last_trade_us, 30,
                       "a heartbeat vouching for Monday's trades up to the pin")
            stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            stop(process)

    system = [json.loads(line) for path in sorted((tmp_path / "archive" / "days-1" / "system").glob("*.jsonl"))
              for line in path.read_text().splitlines()]
    # The exchange would keep the connection through the night; the collector's own policy idles
    # it after the close and connects again before Monday's open: one connection a day.
    [idle] = [e for e in system if e["event"] == "IDLE"]
    assert idle["detail"]["next_connect"] == "2026-11-23T08:55:00+09:00"
    assert stats["ws_connections"] == 2 and [e["event"] for e in system if e["event"] in ("UP", "DOWN")] == [
        "UP", "DOWN"]
    root = tmp_path / "archive"
    calendar = krx_calendar()
    friday = ingest_day([(root, "")], FRIDAY, calendar.session(FRIDAY))
    monday = ingest_day([(root, "")], MONDAY, calendar.session(MONDAY))
    for result in (friday, monday):
        result.stats.check_accounting()
        assert result.stats.quarantined == 0 and result.stats.duplicates == 0
    expected_friday = streamed(FRIDAY, int(START.timestamp() * US), pinned_at)
    expected_monday = streamed(MONDAY, 0, pinned_at)
    assert len(expected_friday) > 50 and len(expected_monday) > 50
    assert keys(friday) == expected_friday  # the last minutes and the closing print, nothing lost
    assert keys(monday) == expected_monday  # the opening print and Monday's first minutes
    trade_days = sorted(p.parent.name for p in (root / "days-1" / "trades").rglob("*.jsonl"))
    assert set(trade_days) == {"20261120", "20261123"}
    monday_lines = [json.loads(line) for p in (root / "days-1" / "trades" / "20261123").glob("*.jsonl")
                    for line in p.read_text().splitlines()]
    assert {(x["sym"], x["cum"]) for x in monday_lines} == expected_monday  # Monday's trades in Monday's files
