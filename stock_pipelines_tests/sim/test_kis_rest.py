"""KIS REST conformance through real HTTP: fields, envelopes, paging, tokens, the rate limit."""

from __future__ import annotations

import time
from datetime import date, datetime

import httpx
import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import symbol_history_day
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.truth import expected_bars
from stock_pipelines_tests.waiting import wait_until

from . import kis

DAY = date(2026, 11, 20)
AFTER_CLOSE = datetime(2026, 11, 20, 15, 40, tzinfo=SEOUL)
OUTPUT1 = {"prdy_vrss", "prdy_vrss_sign", "prdy_ctrt", "stck_prdy_clpr", "acml_vol", "acml_tr_pbmn", "hts_kor_isnm", "stck_prpr"}
OUTPUT2 = {"stck_bsop_date", "stck_cntg_hour", "stck_prpr", "stck_oprc", "stck_hgpr", "stck_lwpr", "cntg_vol", "acml_tr_pbmn"}
US = 1_000_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def exchange():
    with run_exchange(day=DAY, seed=7, symbols=40, start=AFTER_CLOSE, pinned=True, rate_limit=1_000) as url:
        yield url


@pytest.fixture(scope="module")
def client(exchange):
    with httpx.Client(base_url=exchange, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def access_token(client):
    return kis.token(client).json()["access_token"]


def _truth_rows(exchange, symbol: str, until_us: int | None = None) -> list[tuple]:
    """(HHMMSS, open, high, low, close, volume) of the symbol's bars, built by truth.py from its
    trades (those with ts <= until_us when given: the newest bar may still be forming)."""
    day = exchange.exchange.day
    trades = day.trades(symbol, until_us=until_us)
    bars = expected_bars(zip([symbol] * len(trades.ts), trades.ts.tolist(), trades.px.tolist(), trades.qty.tolist(),
                             strict=True), day.session)
    return [(m.astimezone(SEOUL).strftime("%H%M%S"), o, h, lo, c, v)
            for _, m, o, h, lo, c, v in bars.iter_rows()]


def test_token_reply_fields(client):
    reply = kis.token(client, appkey="key-fields")
    body = reply.json()
    assert reply.status_code == 200
    assert set(body) == {"access_token", "access_token_token_expired", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86_400
    datetime.strptime(body["access_token_token_expired"], "%Y-%m-%d %H:%M:%S")


def test_a_second_token_within_a_minute_is_refused_with_egw00133(client):
    assert kis.token(client, appkey="key-twice").status_code == 200
    again = kis.token(client, appkey="key-twice")
    assert again.status_code == 403 and again.json()["error_code"] == "EGW00133"
    assert kis.token(client, appkey="key-other").status_code == 200  # per app key


def test_itemchart_fields_and_envelope(client, access_token):
    reply = kis.itemchart(client, access_token, "005930", "153000")
    body = reply.json()
    assert reply.status_code == 200 and reply.headers["tr_id"] == "FHKST03010200"
    assert (body["rt_cd"], body["msg_cd"]) == ("0", "MCA00000")
    assert set(body["output1"]) == OUTPUT1 and body["output1"]["hts_kor_isnm"] == "삼성전자"
    assert len(body["output2"]) == 30 and all(set(row) == OUTPUT2 for row in body["output2"])
    assert all(isinstance(value, str) for row in body["output2"] for value in row.values())
    hours = [row["stck_cntg_hour"] for row in body["output2"]]
    assert hours[0] == "153000" and hours[1] == "151900" and hours == sorted(hours, reverse=True)


def test_thirteen_calls_of_30_bars_reconstruct_the_day(exchange, client, access_token):
    rows, calls = kis.page_back_today(client, access_token, "005930")
    assert calls == 13  # 381 bars: 09:00..15:19 and 15:30
    assert [kis.bar_tuple(r) for r in rows] == _truth_rows(exchange, "005930")
    assert {r["stck_bsop_date"] for r in rows} == {"20261120"}
    output1 = kis.itemchart(client, access_token, "005930", "153000").json()["output1"]
    assert int(output1["acml_vol"]) == sum(int(r["cntg_vol"]) for r in rows)


def test_a_quiet_symbol_pages_back_only_its_traded_minutes(exchange, client, access_token):
    quiet = exchange.exchange.day.codes[-1]
    rows, _ = kis.page_back_today(client, access_token, quiet)
    assert [kis.bar_tuple(r) for r in rows] == _truth_rows(exchange, quiet)


def test_the_newest_bar_is_still_forming(exchange, client, access_token):
    at = datetime(2026, 11, 20, 10, 0, 30, tzinfo=SEOUL)
    client.post("/admin/clock", json={"at": at.isoformat(), "pinned": True}).raise_for_status()
    try:
        body = kis.itemchart(client, access_token, "005930", "153000").json()  # a future hour: as of now
        newest = body["output2"][0]
        assert newest["stck_cntg_hour"] == "100000"
        truth = _truth_rows(exchange, "005930", until_us=int(at.timestamp()) * US)
        assert kis.bar_tuple(newest) == truth[-1]
        trades = exchange.exchange.day.trades("005930", until_us=int(at.timestamp()) * US)
        assert int(body["output1"]["acml_vol"]) == int(trades.cum[-1])
    finally:
        client.post("/admin/clock", json={"at": AFTER_CLOSE.isoformat(), "pinned": True}).raise_for_status()


def test_dailychart_pages_a_past_day_120_at_a_time(exchange, client, access_token):
    previous = date(2026, 11, 19)  # the CSAT day: 10:00-16:30
    rows, hour = [], "163000"
    for _ in range(5):
        body = kis.dailychart(client, access_token, "000660", "20261119", hour).json()
        assert body["rt_cd"] == "0" and set(body["output1"]) == OUTPUT1
        page = body["output2"]
        assert len(page) <= 120
        rows += page
        if len(page) < 120:
            break
        hour = kis.previous_minute(page[-1]["stck_cntg_hour"])
    assert {r["stck_bsop_date"] for r in rows} == {"20261119"}
    day = exchange.exchange.day
    trades = symbol_history_day(previous, 7, "000660", day.symbol_index("000660"))
    assert sum(int(r["cntg_vol"]) for r in rows) == int(trades.qty.sum())
    assert rows[0]["stck_cntg_hour"] == "163000" and rows[-1]["stck_cntg_hour"] == "100000"


def test_dailychart_with_past_data_continues_into_the_previous_day(client, access_token):
    body = kis.dailychart(client, access_token, "005930", "20261120", "090500", past="Y").json()
    dates = [r["stck_bsop_date"] for r in body["output2"]]
    assert len(dates) == 120 and dates[0] == "20261120" and dates[-1] == "20261119"


def test_periodchart_reports_each_days_volume_newest_first(exchange, client, access_token):
    body = kis.periodchart(client, access_token, "000660", "20261116", "20261130").json()
    # the minute-chart summary and more (the full published layout: brokers/test_wire_fixtures.py)
    assert body["rt_cd"] == "0" and OUTPUT1 < set(body["output1"])
    rows = body["output2"]
    # no row after the simulated day; the CSAT day (19th) is a trading day
    assert [r["stck_bsop_date"] for r in rows] == ["20261120", "20261119", "20261118", "20261117", "20261116"]
    day = exchange.exchange.day
    today = day.trades("000660")
    assert int(rows[0]["acml_vol"]) == int(today.cum[-1]) == int(body["output1"]["acml_vol"])
    assert (int(rows[0]["stck_oprc"]), int(rows[0]["stck_clpr"])) == (int(today.px[0]), int(today.px[-1]))
    past = symbol_history_day(date(2026, 11, 19), 7, "000660", day.symbol_index("000660"))
    assert int(rows[1]["acml_vol"]) == int(past.qty.sum()) == int(past.cum[-1])
    assert int(rows[1]["stck_hgpr"]) == int(past.px.max()) and int(rows[1]["stck_lwpr"]) == int(past.px.min())


def test_periodchart_today_is_as_of_the_clock_and_other_periods_are_refused(exchange, client, access_token):
    at = datetime(2026, 11, 20, 11, 0, tzinfo=SEOUL)
    client.post("/admin/clock", json={"at": at.isoformat(), "pinned": True}).raise_for_status()
    try:
        body = kis.periodchart(client, access_token, "005930", "20261120", "20261120").json()
        trades = exchange.exchange.day.trades("005930", until_us=int(at.timestamp()) * US)
        assert [int(r["acml_vol"]) for r in body["output2"]] == [int(trades.cum[-1])]
    finally:
        client.post("/admin/clock", json={"at": AFTER_CLOSE.isoformat(), "pinned": True}).raise_for_status()
    weekly = kis.periodchart(client, access_token, "005930", "20261101", "20261120", period="W").json()
    assert weekly["rt_cd"] == "1" and "FID_PERIOD_DIV_CODE" in weekly["msg1"]
    bad = kis.periodchart(client, access_token, "005930", "2026-11-01", "20261120").json()
    assert bad["rt_cd"] == "1" and "FID_INPUT_DATE_1" in bad["msg1"]


def test_wrong_or_missing_token_is_egw00121(client):
    reply = kis.itemchart(client, "not-a-token", "005930", "153000")
    assert reply.status_code == 500 and reply.json() == {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."}


def test_a_token_used_with_another_app_key_is_refused(client, access_token):
    reply = kis.itemchart(client, access_token, "005930", "153000", appkey="someone-else")
    assert reply.json()["msg_cd"] == "EGW00121"


def test_expired_token_is_egw00123_and_a_new_one_works():
    with run_exchange(day=DAY, seed=7, symbols=5, start=AFTER_CLOSE, pinned=True, token_ttl_s=0.3) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        token = kis.token(client).json()["access_token"]
        assert kis.itemchart(client, token, "005930", "153000").json()["rt_cd"] == "0"
        expired = wait_until(lambda: (r := kis.itemchart(client, token, "005930", "153000")).json()["rt_cd"] == "1" and r,
                             5, "the 0.3 s token to be refused")
        assert expired.status_code == 500 and expired.json()["msg_cd"] == "EGW00123"
        assert expired.json()["msg1"] == "기간이 만료된 token 입니다."


def test_bad_input_is_an_error_envelope(client, access_token):
    unknown = kis.itemchart(client, access_token, "999999", "153000").json()
    bad_hour = kis.itemchart(client, access_token, "005930", "25:00").json()
    assert unknown["rt_cd"] == "1" and "FID_INPUT_ISCD" in unknown["msg1"]
    assert bad_hour["rt_cd"] == "1" and "FID_INPUT_HOUR_1" in bad_hour["msg1"]
    wrong_tr = client.get(kis.ITEMCHART, headers=kis.headers(access_token, "FHKST03010230"),
                          params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930", "FID_INPUT_HOUR_1": "153000"})
    assert wrong_tr.json()["rt_cd"] == "1"


def test_rate_limit_n_plus_one_calls_in_a_second_gives_exactly_one_egw00201():
    limit = 5
    with run_exchange(day=DAY, seed=7, symbols=5, start=AFTER_CLOSE, pinned=True, rate_limit=limit) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        token = kis.token(client).json()["access_token"]
        rejected = 0
        for _ in range(3):  # the burst must fall in one wall-clock second (the limiter's window)
            second = int(time.time())
            wait_until(lambda s=second: int(time.time()) > s, 2, "the next wall-clock second to begin", every=0.002)
            start = time.time()
            replies = [kis.itemchart(client, token, "005930", "153000") for _ in range(limit + 1)]
            rejected += sum(r.json()["msg_cd"] == "EGW00201" for r in replies)
            if int(time.time()) == int(start):
                break
        codes = [r.json()["msg_cd"] for r in replies]
        assert codes.count("EGW00201") == 1 and codes[-1] == "EGW00201"
        limited = replies[-1]
        assert limited.status_code == 500
        assert limited.json() == {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
        stats = client.get("/admin/stats").json()
        assert stats["rate_limited"] == rejected >= 1
        assert stats["calls"]["kis_itemchart"] >= limit + 1 and stats["tokens_issued"] == 1


def test_bars_from_rest_equal_bars_from_the_trades(exchange, client, access_token):
    """What the REST serves is the aggregation of the very trades the exchange streams."""
    day = exchange.exchange.day
    for code in day.codes[:5]:
        rows, _ = kis.page_back_today(client, access_token, code)
        assert [kis.bar_tuple(r) for r in rows] == _truth_rows(exchange, code), code
        # every trade is in a bar: the day's volume over REST is the trades' total
        assert sum(int(r["cntg_vol"]) for r in rows) == int(day.trades(code).qty.sum()), code


def test_configured_credentials_are_enforced():
    with run_exchange(day=DAY, seed=7, symbols=2, start=AFTER_CLOSE, pinned=True,
                      credentials={"key-1": "secret-1"}) as url, httpx.Client(base_url=url, timeout=10) as client:
        unknown = kis.token(client, appkey="stranger", appsecret="secret-1")
        wrong_secret = kis.token(client, appkey="key-1", appsecret="guess")
        assert (unknown.status_code, unknown.json()["error_code"]) == (403, "EGW00103")
        assert (wrong_secret.status_code, wrong_secret.json()["error_code"]) == (403, "EGW00105")
        assert kis.token(client).status_code == 200
        assert "secret-1" not in wrong_secret.text


def test_dailychart_outside_the_calendar_or_in_the_future(client, access_token):
    old = kis.dailychart(client, access_token, "005930", "19991231", "153000").json()
    assert old["rt_cd"] == "1" and "FID_INPUT_DATE_1" in old["msg1"]
    future = kis.dailychart(client, access_token, "005930", "20261123", "153000").json()
    assert future["rt_cd"] == "0" and future["output2"] == []
    weekend = kis.dailychart(client, access_token, "005930", "20261121", "153000").json()
    assert weekend["rt_cd"] == "0" and weekend["output2"] == []


def test_reply_headers_are_spelled_as_the_gateway_sends_them(client, access_token):
    """`Content-Type` capitalised and `tr_id`, `tr_cont`, `gt_uid` on quotation replies: the official
    sample makes a namedtuple of every all-lowercase header name, so a lowercase `content-length`
    (the ASGI spelling) crashed it on the first quotation reply."""
    replies = {
        "FHKST03010200": kis.itemchart(client, access_token, "005930", "153000"),
        "FHKST03010230": kis.dailychart(client, access_token, "005930", "20261120", "153000"),
        "FHKST03010100": kis.periodchart(client, access_token, "005930", "20261118", "20261120"),
    }
    approval = client.post("/oauth2/Approval", json={"grant_type": "client_credentials", "appkey": "key-1",
                                                     "secretkey": "secret-1"})
    bad_symbol = kis.itemchart(client, access_token, "ZZZZZZ", "153000")
    for reply in [*replies.values(), approval, bad_symbol]:
        assert reply.status_code == 200
        names = [name.decode() for name, _ in reply.headers.raw]
        assert "Content-Type" in names and reply.headers["content-type"] == "application/json; charset=UTF-8"
        lowercase = [name for name in names if name.islower()]
        assert all(name.isidentifier() for name in lowercase), lowercase
    uids = set()
    for tr_id, reply in replies.items():
        assert reply.json()["rt_cd"] == "0"
        assert (reply.headers["tr_id"], reply.headers["tr_cont"]) == (tr_id, "")
        assert len(reply.headers["gt_uid"]) == 32
        uids.add(reply.headers["gt_uid"])
    assert len(uids) == 3
