"""The Kiwoom REST API wire format the simulator speaks (token and the ka10080 minute chart).

Sources: Kiwoom-Securities/Kiwoom-REST-API (examples/국내주식/차트/get_domestic_stock_minute_chart.py
for the ka10080 row fields and their order, kiwoom/core/errors.py for the return codes); what is
not verified: docs/simulator.md.
"""

from __future__ import annotations

from datetime import datetime

from stock_pipelines.market import SEOUL

US = 1_000_000

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
