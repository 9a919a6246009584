"""A stall is a trading-hours condition: the real Kiwoom collector process, on an accelerated
exchange whose night runs 30 times faster than its day, declares STALLED while its feed is silent
in continuous trading, and the stall still in force at the close does not follow it into the
night (its beats say "ok" while it idles, and the incident rules open no `collector_stalled`)."""

from __future__ import annotations

import json
import signal
from datetime import date, datetime, timedelta

import pytest

from stock_pipelines.collector.policy import MarketWindow
from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.incident_tick import collector_views
from stock_pipelines.ops.incidents import COLLECTOR_STALLED, collector_observations
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.waiting import wait_until

from .conftest import admin
from .test_kiwoom_feed import _env, _start, _status, _stop
from .test_process import wait_streaming

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DAY, NEXT = date(2026, 11, 18), date(2026, 11, 19)   # Wednesday; Thursday opens at 10:00 (the CSAT)
SEED, SYMBOLS, DAY_SPEED, NIGHT_SPEED = 11, 4, 240, 7200
COLLECTOR = "kw-night"


def _at(event: dict) -> datetime:
    return datetime.fromtimestamp(event["at"] / 1_000_000, SEOUL)


def test_a_stall_at_the_close_is_not_carried_into_the_night(tmp_path, redis_server):
    client = redis_server.client()
    calendar = krx_calendar()
    window = MarketWindow(calendar, timedelta(minutes=5), timedelta(minutes=5))
    codes = SimDay(DAY, seed=SEED, symbols=SYMBOLS, eager=False).codes
    args = ["--date", DAY.isoformat(), "--seed", str(SEED), "--symbols", str(SYMBOLS), "--start", "15:04", "--pin",
            "--speed", str(DAY_SPEED), "--night-speed", str(NIGHT_SPEED), "--overnight", "run"]
    night_views = []
    with run_exchange_process(args) as url:
        process = _start(_env(tmp_path, url, redis_server.url), codes, COLLECTOR, "--source", "kiwoom")
        try:
            wait_streaming(process, client, COLLECTOR)
            # the Kiwoom feed goes silent from 15:04 through the close: a real stall in the session
            admin(url, "/admin/faults", {"mode": "stall_ws", "target": "kiwoom"})
            admin(url, "/admin/clock", {"pinned": False})
            wait_until(lambda: _status(client, COLLECTOR).get("status") == "stalled", 30,
                       "the collector to declare its silent feed STALLED in continuous trading")
            wait_until(lambda: _status(client, COLLECTOR).get("state") == "idle", 30,
                       "the collector to idle after the close")
            admin(url, "/admin/faults", {"mode": "none"})   # the feed is healthy again for the morning
            beats = HeartbeatStore(client)

            def night_view():
                beat = beats.latest(COLLECTOR)
                if beat is not None and not window.should_connect(beat.at.timestamp()):
                    night_views.append((beat.at, collector_observations(beat.at, collector_views(client, beat.at))))
                return len(night_views) >= 5

            wait_until(night_view, 20, "five looks at the collector during the night", every=0.3)
            morning = datetime(2026, 11, 19, 10, 3, tzinfo=SEOUL)
            wait_until(lambda: datetime.fromisoformat(admin(url, "/admin/clock")["now"]) >= morning, 40,
                       "the exchange clock in Thursday's session")
            wait_until(lambda: _status(client, COLLECTOR).get("status") == "ok"
                       and _status(client, COLLECTOR).get("state") == "connected", 20,
                       "Thursday's trades on the reconnected feed")
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            _stop(process)

    system = [json.loads(line) for path in sorted((tmp_path / "archive" / COLLECTOR / "system").glob("*.jsonl"))
              for line in path.read_text().splitlines()]
    stalls = [e for e in system if e["event"] == "STALLED"]
    assert stalls, "the silent feed in continuous trading was never declared STALLED"
    assert all(window.continuous(e["at"] / 1_000_000) for e in stalls), [_at(e) for e in stalls]
    assert all(_at(e).date() == DAY for e in stalls)
    # the night from 17:00: the collector idles at 15:35, and on a loaded machine a wall second
    # late is an hour of this night
    night_start, night_end = datetime(2026, 11, 18, 17, 0, tzinfo=SEOUL), datetime(2026, 11, 19, 9, 0, tzinfo=SEOUL)
    night = [e for e in system if e["event"] == "HEARTBEAT" and night_start <= _at(e) < night_end]
    assert len(night) >= 10, f"only {len(night)} beats at night"
    wrong = [(_at(b), b["detail"]["state"], b["detail"]["status"]) for b in night
             if (b["detail"]["state"], b["detail"]["status"]) != ("idle", "ok")]
    assert not wrong, wrong[:5]
    stalled_beats = [_at(e) for e in system if e["event"] == "HEARTBEAT" and e["detail"]["status"] == "stalled"]
    assert stalled_beats and max(stalled_beats) < night_start
    assert len(night_views) >= 5
    for at, observations in night_views:
        stalled = next(o for o in observations if o.kind == COLLECTOR_STALLED)
        assert not stalled.active, (at, stalled.active)
    morning_beats = [e for e in system if e["event"] == "HEARTBEAT" and _at(e).date() == NEXT
                     and e["detail"]["state"] == "connected" and e["detail"]["status"] == "ok"]
    assert morning_beats, "no healthy beat on Thursday morning"
