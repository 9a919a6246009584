"""Kiwoom REST through real HTTP: token, ka10080 with cont-yn/next-key paging, return_code 1700."""

from __future__ import annotations

import time
from datetime import date, datetime

import httpx
import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import symbol_history_day
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.sim.sessions import sim_calendar
from stock_pipelines_tests.truth import expected_bars
from stock_pipelines_tests.waiting import wait_until

DAY = date(2026, 11, 20)
AFTER_CLOSE = datetime(2026, 11, 20, 15, 40, tzinfo=SEOUL)
US = 1_000_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _token(client: httpx.Client) -> str:
    reply = client.post("/oauth2/token", json={"grant_type": "client_credentials", "appkey": "kw", "secretkey": "s"})
    body = reply.json()
    assert reply.status_code == 200 and body["return_code"] == 0 and body["token_type"] == "bearer"
    datetime.strptime(body["expires_dt"], "%Y%m%d%H%M%S")
    return body["token"]


def _chart(client: httpx.Client, token: str, cont: str = "", key: str = "") -> httpx.Response:
    headers = {"api-id": "ka10080", "authorization": f"Bearer {token}", "content-type": "application/json;charset=UTF-8"}
    if cont:
        headers |= {"cont-yn": cont, "next-key": key}
    return client.post("/api/dostk/chart", headers=headers, json={"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"})


def test_minute_chart_pages_back_through_today_and_history():
    with run_exchange(day=DAY, seed=2, symbols=5, start=AFTER_CLOSE, pinned=True, history_days=2,
                      kiwoom_rate_limit=100) as url, httpx.Client(base_url=url, timeout=10) as client:
        token = _token(client)
        rows, cont, key, calls = [], "", "", 0
        while True:
            reply = _chart(client, token, cont, key)
            calls += 1
            body = reply.json()
            assert body["return_code"] == 0 and reply.headers["api-id"] == "ka10080"
            rows += body["stk_min_pole_chart_qry"]
            if reply.headers["cont-yn"] != "Y":
                break
            cont, key = "Y", reply.headers["next-key"]
        day = url.exchange.day
        calendar = sim_calendar()
        days = [DAY, calendar.previous_trading_day(DAY)]
        days.append(calendar.previous_trading_day(days[-1]))
        today = day.trades("005930")
        expected = expected_bars(zip(["005930"] * len(today.ts), today.ts.tolist(), today.px.tolist(),
                                     today.qty.tolist(), strict=True), day.session).height
        for past in days[1:]:
            trades = symbol_history_day(past, 2, "005930", 0)
            expected += len(set(((trades.ts - trades.ts[0]) // (60 * US)).tolist()))
        times = [r["cntr_tm"] for r in rows]
        assert len(rows) == expected and calls == -(-expected // 900)
        assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
        assert times[0] == "20261120153000" and times[-1].startswith(f"{days[-1]:%Y%m%d}090000")
        today = [r for r in rows if r["cntr_tm"].startswith("20261120")]
        assert sum(int(r["trde_qty"]) for r in today) == int(day.trades("005930").qty.sum())
        prev_close = int(day.prev_close[0])
        for row in today:  # prices carry their direction against the previous close
            price = abs(int(row["cur_prc"]))
            expected_sign = "+" if price > prev_close else "-" if price < prev_close else ""
            assert row["cur_prc"] == f"{expected_sign}{price}"


def test_return_code_1700_over_the_limit_and_bad_token():
    with run_exchange(day=DAY, seed=2, symbols=5, start=AFTER_CLOSE, pinned=True, kiwoom_rate_limit=2) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        token = _token(client)
        for _ in range(3):  # the burst must fall in one wall-clock second (the limiter's window)
            second = int(time.time())
            wait_until(lambda s=second: int(time.time()) > s, 2, "the next wall-clock second to begin", every=0.002)
            start = time.time()
            codes = [_chart(client, token).json()["return_code"] for _ in range(3)]
            if int(time.time()) == int(start):
                break
        assert codes == [0, 0, 1700]
        refused = _chart(client, "nope")
        assert refused.json()["return_code"] != 0 and refused.status_code == 401
