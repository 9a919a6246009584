"""The brokers' published wire layouts (stock_pipelines_tests/fixtures/wire/, sources in its README)
against the project's clients, the H0STCNT0 frame parser and the simulator.

The clients get the fixture replies through httpx's MockTransport (the broker's side of the wire
is the fixture file, nothing else is faked); the simulator is compared field by field: same
names, same order, same value shapes (whole number, decimal, empty, text; all strings)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from stock_pipelines.brokers.kis import KisClient, KisCredentials
from stock_pipelines.brokers.kiwoom import KiwoomClient, KiwoomCredentials
from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.collector.frames import Trade, parse_frame
from stock_pipelines.market import SEOUL
from stock_pipelines.sim import kis_protocol
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
DAY = date(2026, 11, 20)


def fixture(name: str) -> dict:
    return json.loads((WIRE / name).read_text(encoding="utf-8"))


class NoLimit:
    def slot(self, timeout=None):
        return contextlib.nullcontext()


def seoul(day: date, hhmmss: str) -> datetime:
    return datetime.strptime(f"{day:%Y%m%d}{hhmmss}", "%Y%m%d%H%M%S").replace(tzinfo=SEOUL)


def shape(value: object) -> str:
    if not isinstance(value, str):
        return type(value).__name__
    if value == "":
        return "empty"
    if re.fullmatch(r"[+-]?\d+", value):
        return "whole"
    if re.fullmatch(r"[+-]?\d+\.\d+", value):
        return "decimal"
    return "text"


def layout(mapping: dict) -> list[tuple[str, str]]:
    """Field names in order, each with its value's shape."""
    return [(name, shape(value)) for name, value in mapping.items()]


class FixtureBroker:
    """Answers each request with the fixture reply, as the broker would for the published request:
    KIS minute pages keep the rows at or before FID_INPUT_HOUR_1. Requests are kept for assertions."""

    def __init__(self, token: dict, reply: dict, reply_headers: dict | None = None) -> None:
        self.token, self.reply, self.reply_headers = token, reply, reply_headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.startswith("/oauth2/"):
            return httpx.Response(200, json=self.token["reply"])
        body = json.loads(json.dumps(self.reply["reply"]))
        hour = request.url.params.get("FID_INPUT_HOUR_1")
        if hour and "stck_cntg_hour" in (body["output2"] or [{}])[0]:
            body["output2"] = [row for row in body["output2"] if row["stck_cntg_hour"] <= hour]
        return httpx.Response(200, json=body, headers=self.reply_headers)


def kis_client(broker: FixtureBroker, tmp_path: Path, now: datetime) -> KisClient:
    return KisClient("https://kis.invalid", KisCredentials("fixture-key", "fixture-secret"), NoLimit(), tmp_path,
                     today=lambda: now, http=httpx.Client(transport=httpx.MockTransport(broker)))


def kiwoom_client(broker: FixtureBroker, tmp_path: Path) -> KiwoomClient:
    client = KiwoomClient("https://kiwoom.invalid", KiwoomCredentials("fixture-key", "fixture-secret"), NoLimit(),
                          tmp_path, today=lambda: seoul(DAY, "091000"),
                          http=httpx.Client(transport=httpx.MockTransport(broker)))
    # the token cache's clock fixed in 2096: its one-issue-a-minute wait is long past (not the subject
    # here) and a token valid to 2099 is fresh
    client.tokens.clock = lambda: 4_000_000_000.0
    return client


def expected_kis_bars(rows: list[dict], start: datetime, end: datetime) -> list[tuple]:
    """The fixture rows as (minute, o, h, l, c, v), oldest first, read straight from the JSON."""
    bars = [(seoul(date(int(r["stck_bsop_date"][:4]), int(r["stck_bsop_date"][4:6]), int(r["stck_bsop_date"][6:])),
                   r["stck_cntg_hour"]),
             int(r["stck_oprc"]), int(r["stck_hgpr"]), int(r["stck_lwpr"]), int(r["stck_prpr"]), int(r["cntg_vol"]))
            for r in rows]
    return sorted(b for b in bars if start <= b[0] < end)


def got_bars(fetch) -> list[tuple]:
    frame = fetch.bars.sort("minute")
    return [(m.astimezone(SEOUL), o, h, lo, c, v) for m, o, h, lo, c, v in
            frame.select("minute", "open", "high", "low", "close", "volume").iter_rows()]


def assert_published_request(request: httpx.Request, published: dict) -> None:
    assert request.url.path == published["path"]
    assert request.headers["tr_id"] == published["tr_id"]
    assert set(published["headers"]) <= {name.lower() for name in request.headers}
    assert set(request.url.params) == set(published["params"])


def test_kis_client_reads_the_published_today_minute_reply(tmp_path):
    published = fixture("kis_FHKST03010200_inquire_time_itemchartprice.json")
    broker = FixtureBroker(fixture("kis_oauth2_tokenP.json"), published)
    client = kis_client(broker, tmp_path, now=seoul(DAY, "093015"))  # 09:30 is still forming

    fetch = client.minute_bars("005930", DAY, seoul(DAY, "090100"), seoul(DAY, "093500"))

    assert fetch.calls == 1 and not fetch.rejected  # 29 rows < 30: the last page
    bars = got_bars(fetch)
    assert bars == expected_kis_bars(published["reply"]["output2"], seoul(DAY, "090100"), seoul(DAY, "093000"))
    assert len(bars) == 29 and bars[-1] == (seoul(DAY, "092900"), 73400, 73500, 73400, 73500, 65801)
    data_call = broker.requests[-1]
    assert_published_request(data_call, published["request"])
    assert data_call.url.params["FID_INPUT_HOUR_1"] == "092959"


def test_kis_client_reads_the_published_past_day_minute_reply(tmp_path):
    published = fixture("kis_FHKST03010230_inquire_time_dailychartprice.json")
    past = date(2026, 11, 19)
    broker = FixtureBroker(fixture("kis_oauth2_tokenP.json"), published)
    client = kis_client(broker, tmp_path, now=seoul(DAY, "093015"))

    fetch = client.minute_bars("005930", past, seoul(past, "090000"), seoul(past, "091100"))

    assert fetch.calls == 1 and not fetch.rejected
    bars = got_bars(fetch)
    assert bars == expected_kis_bars(published["reply"]["output2"], seoul(past, "090000"), seoul(past, "091100"))
    assert len(bars) == 11 and bars[0] == (seoul(past, "090000"), 74600, 74700, 74600, 74700, 43353)
    assert_published_request(broker.requests[-1], published["request"])
    assert broker.requests[-1].url.params["FID_INPUT_DATE_1"] == "20261119"


def test_kis_client_reads_the_day_volume_from_the_published_daily_reply(tmp_path):
    published = fixture("kis_FHKST03010100_inquire_daily_itemchartprice.json")
    broker = FixtureBroker(fixture("kis_oauth2_tokenP.json"), published)
    client = kis_client(broker, tmp_path, now=seoul(DAY, "093015"))

    assert client.day_volume("005930", date(2026, 11, 19)) == 11832456
    assert client.day_volume("005930", date(2026, 11, 18)) == 9544201
    assert client.day_volume("005930", date(2026, 11, 17)) is None  # no row: no trading reported
    assert_published_request(broker.requests[-1], published["request"])


def test_kiwoom_client_reads_the_published_minute_chart(tmp_path):
    published = fixture("kiwoom_ka10080_minute_chart.json")
    broker = FixtureBroker(fixture("kiwoom_oauth2_token.json"), published, published["reply_headers"])
    client = kiwoom_client(broker, tmp_path)

    fetch = client.minute_bars("005930", DAY, seoul(DAY, "090000"), seoul(DAY, "091000"))

    assert fetch.calls == 1 and not fetch.rejected
    expected = sorted((datetime.strptime(r["cntr_tm"], "%Y%m%d%H%M%S").replace(tzinfo=SEOUL),
                       *(abs(int(r[k])) for k in ("open_pric", "high_pric", "low_pric", "cur_prc")), int(r["trde_qty"]))
                      for r in published["reply"]["stk_min_pole_chart_qry"])
    bars = got_bars(fetch)
    assert bars == expected
    assert bars[0] == (seoul(DAY, "090100"), 73800, 73900, 73700, 73900, 69727)  # "-73900" is a price of 73,900
    call = broker.requests[-1]
    assert call.url.path == published["request"]["path"] and call.headers["api-id"] == "ka10080"
    assert set(published["request"]["headers"]) <= {name.lower() for name in call.headers}
    assert set(json.loads(call.content)) == set(published["request"]["body"])


class RefusingKiwoom(FixtureBroker):
    """Kiwoom that calls the first `refusals` chart tokens invalid (HTTP 401, return_code 8005) and
    issues a new token value each time."""

    def __init__(self, refusals: int) -> None:
        published = fixture("kiwoom_ka10080_minute_chart.json")
        super().__init__(fixture("kiwoom_oauth2_token.json"), published, published["reply_headers"])
        self.refusals, self.issued = refusals, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            self.requests.append(request)
            self.issued += 1
            # valid long after any test run, so that only the 401 can make the client drop it
            return httpx.Response(200, json=self.token["reply"] | {"token": f"token-{self.issued}",
                                                                   "expires_dt": "20991231235959"})
        if self.refusals > 0:
            self.refusals -= 1
            self.requests.append(request)
            return httpx.Response(401, json={"return_code": 8005, "return_msg": "Token이 유효하지 않습니다"})
        return super().__call__(request)


def test_kiwoom_client_reissues_a_token_the_broker_calls_invalid_once(tmp_path):
    broker = RefusingKiwoom(refusals=1)
    client = kiwoom_client(broker, tmp_path)

    fetch = client.minute_bars("005930", DAY, seoul(DAY, "090000"), seoul(DAY, "091000"))

    assert fetch.bars.height == 5 and broker.issued == 2
    charts = [r for r in broker.requests if r.url.path == "/api/dostk/chart"]
    assert [r.headers["authorization"] for r in charts] == ["Bearer token-1", "Bearer token-2"]


def test_kiwoom_client_stops_when_a_fresh_token_is_refused_too(tmp_path):
    broker = RefusingKiwoom(refusals=10)
    client = kiwoom_client(broker, tmp_path)

    with pytest.raises(BrokerAuthError, match="freshly issued token was refused"):
        client.minute_bars("005930", DAY, seoul(DAY, "090000"), seoul(DAY, "091000"))
    assert broker.issued == 2 and len([r for r in broker.requests if r.url.path == "/api/dostk/chart"]) == 2


def test_frame_parser_reads_the_published_h0stcnt0_frame():
    published = fixture("kis_H0STCNT0_frames.json")
    columns = published["columns"]
    frame = published["data_frame"]
    assert frame.startswith("0|H0STCNT0|004|005930^123929^73100^5^")  # the broker's own example, verbatim

    trades = parse_frame(frame)

    fields = frame.split("|", 3)[3].split("^")
    records = [dict(zip(columns, fields[i:i + len(columns)], strict=True)) for i in range(0, len(fields), len(columns))]
    assert [t.sym for t in trades] == [r["MKSC_SHRN_ISCD"] for r in records]
    assert [(t.px, t.qty, t.cum) for t in trades] == [
        (int(r["STCK_PRPR"]), int(r["CNTG_VOL"]), int(r["ACML_VOL"])) for r in records]
    at = int(seoul(DAY, "123929").timestamp()) * 1_000_000
    assert trades[0] == Trade("005930", at, 73100, 5, 8431982)
    assert trades[-1] == Trade("005930", at, 73100, 40, 8432037)  # 8,431,977 before the frame + 5 + 12 + 3 + 40
    assert kis_protocol.H0STCNT0_FIELDS == tuple(columns)


def test_simulator_frames_have_the_published_h0stcnt0_layout():
    published = fixture("kis_H0STCNT0_frames.json")
    columns = published["columns"]
    sample = published["data_frame"].split("|", 3)[3].split("^")[:len(columns)]
    day = SimDay(DAY, seed=3, symbols=3)
    trades = day.trades("005930")
    context = kis_protocol.TickContext.build(trades, f"{DAY:%Y%m%d}")
    frame = kis_protocol.data_frame([context.record(i, closing_print=False) for i in (10, 11)])

    flag, tr_id, count, payload = frame.split("|", 3)
    assert (flag, tr_id, count) == ("0", "H0STCNT0", "002")
    ours = payload.split("^")[:len(columns)]
    assert [shape(v) for v in ours] == [shape(v) for v in sample], list(zip(columns, ours, sample, strict=True))
    assert len(ours[1]) == 6 and len(ours[33]) == 8  # STCK_CNTG_HOUR HHMMSS, BSOP_DATE YYYYMMDD
    assert [t.px for t in parse_frame(frame)] == [int(trades.px[10]), int(trades.px[11])]


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_simulator_replies_have_the_published_field_names_types_and_order():
    kis_today = fixture("kis_FHKST03010200_inquire_time_itemchartprice.json")
    kis_past = fixture("kis_FHKST03010230_inquire_time_dailychartprice.json")
    kis_daily = fixture("kis_FHKST03010100_inquire_daily_itemchartprice.json")
    kiwoom = fixture("kiwoom_ka10080_minute_chart.json")
    with run_exchange(day=DAY, seed=3, symbols=3, start=seoul(DAY, "093015"), pinned=True) as url, \
            httpx.Client(base_url=str(url), timeout=10) as http:
        token = http.post("/oauth2/tokenP", json=fixture("kis_oauth2_tokenP.json")["request"]["body"] | {
            "appkey": "k", "appsecret": "s"}).json()
        assert set(token) == set(fixture("kis_oauth2_tokenP.json")["reply"])  # names only: no published order
        replies = {}
        for name, published, params in (
                ("today", kis_today, {}),
                ("past", kis_past, {"FID_INPUT_DATE_1": "20261119"}),
                ("daily", kis_daily, {"FID_INPUT_DATE_1": "20261118", "FID_INPUT_DATE_2": "20261119"})):
            request = published["request"]
            headers = {"authorization": f"Bearer {token['access_token']}", "appkey": "k", "appsecret": "s",
                       "tr_id": request["tr_id"], "custtype": "P", "content-type": "application/json; charset=utf-8"}
            reply = http.get(request["path"], params=request["params"] | params, headers=headers)
            assert reply.status_code == 200, reply.text
            replies[name] = (reply.json(), published["reply"])
        kw_token = http.post("/oauth2/token", json={"grant_type": "client_credentials", "appkey": "k",
                                                    "secretkey": "s"}).json()
        assert set(kw_token) == set(fixture("kiwoom_oauth2_token.json")["reply"])
        chart = http.post(kiwoom["request"]["path"], json=kiwoom["request"]["body"],
                          headers={"api-id": "ka10080", "authorization": f"Bearer {kw_token['token']}"})
        replies["kiwoom"] = (chart.json(), kiwoom["reply"])
        assert set(kiwoom["reply_headers"]) <= set(chart.headers)

    for name in ("today", "past", "daily"):
        ours, theirs = replies[name]
        assert list(ours) == list(theirs), name
        assert layout(ours["output1"]) == layout(theirs["output1"]), name
        assert ours["output2"], name
        for row in ours["output2"]:
            assert layout(row) == layout(theirs["output2"][0]), (name, row)
        assert (ours["rt_cd"], ours["msg_cd"]) == (theirs["rt_cd"], theirs["msg_cd"])
    ours, theirs = replies["kiwoom"]
    assert list(ours) == list(theirs) and ours["return_code"] == 0
    assert ours["stk_min_pole_chart_qry"]
    for row in ours["stk_min_pole_chart_qry"]:
        assert layout(row) == layout(theirs["stk_min_pole_chart_qry"][0]), row
