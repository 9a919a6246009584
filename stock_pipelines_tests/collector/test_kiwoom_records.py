"""The Kiwoom 0B REAL record parser: the same trades as the KIS frame of the same execution, and
bad records rejected one by one with a reason, counted and written to the system stream."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from stock_pipelines.archive.writer import ArchiveWriter, WriterPolicy
from stock_pipelines.collector import frames, kiwoom_session
from stock_pipelines.collector.feeds import ACK, BAD, DATA, PING, REFUSED, KiwoomFeed
from stock_pipelines.collector.kiwoom_session import BAD_RECORD, parse_real
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.market import SEOUL
from stock_pipelines.sim import kis_protocol, kiwoom_protocol
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.server import Exchange

DAY = date(2026, 11, 20)
RX = datetime(2026, 11, 20, 9, 5, tzinfo=SEOUL).timestamp()


@pytest.fixture(scope="module")
def exchange() -> Exchange:
    exchange = Exchange(ExchangeConfig(day=DAY, seed=5, symbols=3))
    exchange.day.build()
    return exchange


def test_kiwoom_records_give_the_trades_of_the_kis_frames(exchange):
    day = exchange.day
    context = kis_protocol.TickContext.build(day.trades(day.codes[1]), f"{DAY:%Y%m%d}")
    first = int(day.offsets[1])
    kis_trades = frames.parse_frame(kis_protocol.data_frame([context.record(i, False) for i in range(40)]))
    message = kiwoom_protocol.real([exchange.kiwoom_websocket.record(day, first + i) for i in range(40)])
    kiwoom_trades = parse_real(message, DAY)
    assert kiwoom_trades == kis_trades  # same symbol, execution time, price, quantity and cum
    assert len({t.cum for t in kiwoom_trades}) == 40
    values = json.loads(message)["data"][0]["values"]
    assert values["15"][0] in "+-" and values["10"].lstrip("+-") == str(kis_trades[0].px)


def _entry(item: str = "005930", **values: str) -> dict:
    base = {"20": "090501", "10": "+71000", "15": "-10", "13": "1010"}
    return {"type": "0B", "name": "주식체결", "item": item, "values": {**base, **values}}


def test_bad_records_are_rejected_alone_counted_and_written(tmp_path):
    writer = ArchiveWriter(tmp_path, "kw", WriterPolicy(min_free_bytes=1), clock=lambda: RX)
    pipeline = Pipeline(writer, "kis", lambda: int(RX * 1_000_000))
    decode = KiwoomFeed(kiwoom_session.KiwoomTokens()).decoder(RX)
    data = [
        _entry(),  # good: 10 shares, sell-initiated
        _entry(**{"10": "71,000"}),  # bad price
        _entry("5930"),  # bad symbol
        {**_entry(), "type": "0A"},  # another real-time type
        "not an object",
        _entry(**{"20": "256000"}),  # bad time
        _entry(**{"13": "5"}),  # cum below the quantity
        _entry(**{"15": "+0"}),  # no quantity
        _entry(**{"15": "+20", "13": "1030", "10": "-70900"}),  # good: 20 shares, buy-initiated
    ]
    message = json.dumps({"trnm": "REAL", "data": data}, ensure_ascii=False)
    records = pipeline.receive(message, decode, "kiwoom")
    assert pipeline.receive('{"trnm": "REAL", "data": "x"}', decode, "kiwoom") == []  # rejected whole
    writer.close()

    assert [(r.src, r.sym, r.px, r.qty, r.cum) for r in records] == [
        ("kiwoom", "005930", 71000, 10, 1010), ("kiwoom", "005930", 70900, 20, 1030)]
    assert records[0].ts == int(datetime(2026, 11, 20, 9, 5, 1, tzinfo=SEOUL).timestamp()) * 1_000_000
    c = pipeline.counters
    assert (c.frames_in, c.records_in, c.frames_bad, c.archived) == (2, 2, 8, 2)
    assert c.bad_by_reason == {frames.BAD_NUMBER: 1, frames.BAD_SYMBOL: 1, frames.OTHER_TR_ID: 1,
                               BAD_RECORD: 1, frames.BAD_TIME: 1, frames.BAD_CUM: 1,
                               frames.NONPOSITIVE: 1, frames.NOT_A_FRAME: 1}
    system = [json.loads(x) for x in (tmp_path / "kw" / "system" / "20261120.jsonl").read_text().splitlines()]
    bad = [x["detail"] for x in system if x["event"] == "BAD_FRAME"]
    assert len(bad) == 8 and [b["bad_frames"] for b in bad] == list(range(1, 9))
    assert {b["reason"] for b in bad} == set(c.bad_by_reason)
    lines = [json.loads(x) for x in (tmp_path / "kw/trades/20261120/09_00.jsonl").read_text().splitlines()]
    assert [(x["src"], x["cum"]) for x in lines] == [("kiwoom", 1010), ("kiwoom", 1030)]


def test_control_packets_are_told_apart():
    feed = KiwoomFeed(kiwoom_session.KiwoomTokens())
    assert feed.read('{"trnm":"REAL","data":[]}').kind == DATA
    assert feed.read('{"trnm":"PING"}').kind == PING
    assert feed.read('{"trnm":"REG","return_code":0,"return_msg":""}').kind == ACK
    refused = feed.read('{"trnm":"LOGIN","return_code":8005,"return_msg":"Token이 유효하지 않습니다"}')
    assert refused.kind == REFUSED and refused.credential_refused and refused.code == "8005"
    assert feed.read("PING?").kind == BAD
