"""Days that chain and come and go: previous close = the close of the trading day before, in any
generation order; the day cache keeps its cap and an evicted day comes back byte-identical; the
REST "today" and the WebSocket follow the clock from one session into the next."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime

import httpx
import numpy as np
import pytest
import websockets

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import SimDay, generate_symbol
from stock_pipelines.sim.day_cache import DayCache
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.sim.sessions import sim_calendar

from . import kis

US = 1_000_000
# Wed, CSAT Thu (10:00-16:30), Fri, then Mon after a weekend
DAYS = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23)]


def _day_bytes(sim: SimDay) -> bytes:
    sim.build()
    return b"".join(a.tobytes() for a in (sim.sym, sim.ts, sim.px, sim.qty, sim.cum, sim.side, sim.time_order))


@pytest.mark.parametrize("code, rank", [("005930", 0), ("000660", 1), ("900120", 42)])
def test_each_close_is_the_next_days_previous_close_whatever_order_days_are_made_in(code, rank):
    backwards = {d: generate_symbol(d, 7, code, rank) for d in reversed(DAYS)}
    for before, after in zip(DAYS, DAYS[1:], strict=False):
        assert sim_calendar().next_trading_day(before) == after
        assert int(backwards[before].px[-1]) == backwards[after].prev_close
    # the same day generated alone (nothing else first) gives the same bytes
    alone = generate_symbol(DAYS[2], 7, code, rank)
    assert np.array_equal(alone.px, backwards[DAYS[2]].px) and alone.prev_close == backwards[DAYS[2]].prev_close


def test_chained_prices_stay_within_the_daily_limit_and_another_seed_differs():
    prices = [generate_symbol(d, 3, "035720", 12) for d in DAYS]
    for trades in prices:
        assert (np.abs(trades.px - trades.prev_close) <= 0.3 * trades.prev_close).all()
    other = generate_symbol(DAYS[0], 4, "035720", 12)
    assert other.prev_close != prices[0].prev_close


def test_the_cache_holds_at_most_its_cap_and_an_evicted_day_regenerates_byte_identically():
    cache = DayCache(seed=5, symbols=30, activity=0.3, cap=2)
    first = _day_bytes(cache.get(DAYS[0]))
    for day in DAYS[1:]:
        cache.get(day).trades("005930")
        assert len(cache.held()) <= 2
    assert cache.held() == DAYS[2:] and cache.evicted == 2
    again = cache.get(DAYS[0])
    assert _day_bytes(again) == first
    assert cache.generated == 5 and cache.held() == [DAYS[3], DAYS[0]]


def _itemchart_date(url: str, access: str) -> tuple[str, int]:
    with httpx.Client(base_url=str(url), timeout=10) as client:
        reply = kis.itemchart(client, access, "005930", "235959").json()
    rows = reply["output2"]
    return (rows[0]["stck_bsop_date"] if rows else ""), len(rows)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_rest_today_and_one_websocket_follow_the_clock_from_friday_close_into_monday():
    friday_late = datetime(2026, 11, 20, 15, 29, 30, tzinfo=SEOUL)
    with run_exchange(day=DAYS[2], symbols=3, start=friday_late, pinned=True, speed=120, overnight="skip") as url:
        with httpx.Client(base_url=str(url), timeout=10) as client:
            access = kis.token(client).json()["access_token"]
            approval = client.post("/oauth2/Approval", json={"grant_type": "client_credentials",
                                                             "appkey": "key-1", "secretkey": "s"}).json()
        assert _itemchart_date(url, access)[0] == "20261120"
        exchange = url.exchange
        friday, monday = exchange.state.days.get(DAYS[2]), exchange.state.days.get(DAYS[3])
        monday_first_minutes = datetime(2026, 11, 23, 9, 3, tzinfo=SEOUL)

        async def stream() -> list[tuple[str, str, int]]:
            got = []
            async with websockets.connect(url.ws_url) as ws:
                for code in friday.codes:
                    await ws.send(json.dumps({
                        "header": {"approval_key": approval["approval_key"], "custtype": "P", "tr_type": "1",
                                   "content-type": "utf-8"},
                        "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}}}))
                    await ws.recv()
                httpx.post(f"{url}/admin/clock", json={"pinned": False}, timeout=10)
                deadline, pinned = time.monotonic() + 40, False
                while time.monotonic() < deadline:
                    if not pinned and exchange.clock.now() >= monday_first_minutes:
                        await asyncio.to_thread(httpx.post, f"{url}/admin/clock", json={"pinned": True}, timeout=10)
                        pinned = True
                    try:
                        message = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        if pinned:
                            break  # pinned and quiet: everything up to the pin has arrived
                        continue
                    if message[0] in "01":
                        _, _, count, payload = message.split("|", 3)
                        fields = payload.split("^")
                        for i in range(int(count)):
                            record = fields[i * 46:(i + 1) * 46]
                            got.append((record[0], record[1], int(record[13])))  # code, HHMMSS, ACML_VOL
            return got

        got = asyncio.run(stream())
        pinned_at = exchange.clock.now_us()
        assert exchange.clock.now() >= monday_first_minutes
        assert _itemchart_date(url, access)[0] == "20261123"
        assert exchange.state.today() == DAYS[3] and exchange.day.day == DAYS[3]

    def expected(sim: SimDay, after_us: int, until_us: int) -> set[tuple[str, int]]:
        out = set()
        for code in sim.codes:
            t = sim.trades(code, until_us=until_us)
            out |= {(code, int(c)) for c, ts in zip(t.cum, t.ts, strict=True) if ts > after_us}
        return out

    friday_part = expected(friday, int(friday_late.timestamp() * US), pinned_at)
    monday_part = expected(monday, 0, pinned_at)
    streamed = {(code, cum) for code, _, cum in got}
    assert friday_part and monday_part
    assert streamed == friday_part | monday_part  # both days on one connection, nothing lost or doubled
    assert len(got) == len(streamed)


@pytest.mark.integration
def test_the_admin_clock_switches_night_modes_and_today_follows():
    with run_exchange(day=DAYS[2], symbols=2, pinned=True) as url:
        refused = httpx.post(f"{url}/admin/clock", json={"overnight": "sleep"}, timeout=10)
        assert refused.status_code == 400 and "overnight" in refused.json()["error"]
        saturday_noon = datetime(2026, 11, 21, 12, 0, tzinfo=SEOUL)
        state = httpx.post(f"{url}/admin/clock", json={"at": saturday_noon.isoformat()}, timeout=10).json()
        assert state["now"] == saturday_noon.isoformat() and state["today"] == "2026-11-20"  # pinned: no jump
        state = httpx.post(f"{url}/admin/clock", json={"overnight": "skip", "pinned": False, "night_speed": 600},
                           timeout=10).json()
        assert state["now"].startswith("2026-11-23T08:50") and state["today"] == "2026-11-23"
        assert (state["overnight"], state["night_speed"], state["day_speed"]) == ("skip", 600.0, 1.0)
        info = httpx.get(f"{url}/admin/info", timeout=30).json()
        assert info["date"] == "2026-11-23" and info["days_held"][-1] == "2026-11-23"
