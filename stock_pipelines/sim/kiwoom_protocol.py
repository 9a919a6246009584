"""The Kiwoom REST API wire format the simulator speaks: token, the ka10080 minute chart, and the
real-time WebSocket (LOGIN, REG/REMOVE of type 0B 주식체결, PING, REAL records).

Sources: Kiwoom-Securities/Kiwoom-REST-API (examples/국내주식/차트/get_domestic_stock_minute_chart.py
for the ka10080 row fields and their order, kiwoom/core/errors.py for the return codes,
kiwoom/core/ws_client.py for LOGIN and the PING echo, examples/국내주식/실시간시세/
subscribe_domestic_stock_trade_async.py for REG, kiwoom/core/fid.py for the 0B field ids); what is
not verified: docs/simulator.md.
"""

from __future__ import annotations

import json
from datetime import datetime

from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US

TOKEN_PATH = "/oauth2/token"
CHART_PATH = "/api/dostk/chart"
MINUTE_CHART_API_ID = "ka10080"
PAGE_SIZE = 900  # rows a call (not verified; docs/simulator.md)

OK_MSG = "정상적으로 처리되었습니다"
RATE_LIMIT_CODE = 1700
RATE_LIMIT_MSG = "허용된 요청 개수를 초과하였습니다. API ID=ka10080"
TOKEN_INVALID_CODE = 8005  # one of the broker's invalid-or-expired-token codes (8003, 8005, 8006, ...)
BAD_CREDENTIALS_CODE = 8001  # one of its wrong-appkey-or-secretkey codes (8001, 8002, 8011, 8012)
TOKEN_INVALID_MSG = "Token이 유효하지 않습니다"
BAD_INPUT_CODE = 2


def reply(return_code: int = 0, return_msg: str = OK_MSG, **fields: object) -> dict[str, object]:
    return {**fields, "return_code": return_code, "return_msg": return_msg}


def signed(price: int, prev_close: int) -> str:
    """Kiwoom prefixes prices with the direction against the previous close: +, - or nothing."""
    if price > prev_close:
        return f"+{price}"
    if price < prev_close:
        return f"-{price}"
    return str(price)


def minute_row(
    start_us: int, o: int, h: int, lo: int, c: int, vol: int, acc_vol: int, prev_close: int
) -> dict[str, str]:
    """One `stk_min_pole_chart_qry` row; `acc_vol` is the day's traded volume through this bar."""
    diff = c - prev_close
    return {
        "cur_prc": signed(c, prev_close),
        "trde_qty": str(vol),
        "cntr_tm": datetime.fromtimestamp(start_us // US, SEOUL).strftime("%Y%m%d%H%M%S"),
        "open_pric": signed(o, prev_close),
        "high_pric": signed(h, prev_close),
        "low_pric": signed(lo, prev_close),
        "acc_trde_qty": str(acc_vol),
        "pred_pre": f"+{diff}" if diff > 0 else str(diff),
        "pred_pre_sig": "2" if diff > 0 else "5" if diff < 0 else "3",
    }


# -- the real-time WebSocket ------------------------------------------------------------------

WS_PATH = "/api/dostk/websocket"  # wss://api.kiwoom.com:10000 (mock: mockapi.kiwoom.com:10000)
TRADE_TYPE = "0B"
TRADE_NAME = "주식체결"
LOGIN_REQUIRED_CODE = 100013  # not verified: the code of a REG sent before LOGIN
BAD_PACKET_CODE = 100001  # not verified: a packet that is not a known trnm / not JSON

# 0B field ids (kiwoom/core/fid.py): the ones a trade line needs, and the rest the simulator fills.
F_TIME, F_PRICE, F_QTY, F_CUM = "20", "10", "15", "13"


def message(trnm: str, return_code: int | None = None, return_msg: str = "", **fields: object) -> str:
    body: dict[str, object] = {"trnm": trnm, **fields}
    if return_code is not None:
        body.update(return_code=return_code, return_msg=return_msg)
    return json.dumps(body, ensure_ascii=False)


def ping() -> str:
    return json.dumps({"trnm": "PING"})


def trade_values(hhmmss: str, px: int, qty: int, is_buy: bool, cum: int, value: int, prev_close: int,
                 open_px: int, high: int, low: int, ask: int, bid: int) -> dict[str, str]:
    """One 0B record's `values`: price fields signed against the previous close, the quantity
    signed by side (+ buy-initiated, - sell-initiated), cumulative volume and value unsigned."""
    diff = px - prev_close
    return {
        F_TIME: hhmmss,
        F_PRICE: signed(px, prev_close),
        "11": f"+{diff}" if diff > 0 else str(diff),
        "12": f"{diff / prev_close * 100:+.2f}" if diff else "0.00",
        "27": signed(ask, prev_close),
        "28": signed(bid, prev_close),
        F_QTY: f"+{qty}" if is_buy else f"-{qty}",
        F_CUM: str(cum),
        "14": str(value // 1_000_000),  # 누적거래대금, millions of won
        "16": signed(open_px, prev_close),
        "17": signed(high, prev_close),
        "18": signed(low, prev_close),
        "25": "2" if diff > 0 else "5" if diff < 0 else "3",
        "290": "2",  # 장구분: regular session
        "9081": "1",  # 거래소구분: KRX
    }


def real(records: list[tuple[str, dict[str, str]]]) -> str:
    """A REAL message with one `data` entry a (code, values) record."""
    return json.dumps({"trnm": "REAL", "data": [
        {"type": TRADE_TYPE, "name": TRADE_NAME, "item": code, "values": values}
        for code, values in records]}, ensure_ascii=False)
