"""The Kiwoom REST API wire format the simulator speaks (token and the ka10080 minute chart).

Sources and unverified details: docs/simulator.md.
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
TOKEN_INVALID_CODE = 3
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


def minute_row(start_us: int, o: int, h: int, lo: int, c: int, vol: int, prev_close: int) -> dict[str, str]:
    diff = c - prev_close
    return {
        "cur_prc": signed(c, prev_close),
        "trde_qty": str(vol),
        "cntr_tm": datetime.fromtimestamp(start_us // US, SEOUL).strftime("%Y%m%d%H%M%S"),
        "open_pric": signed(o, prev_close),
        "high_pric": signed(h, prev_close),
        "low_pric": signed(lo, prev_close),
        "upd_stkpc_tp": "",
        "upd_rt": "",
        "bic_inds_tp": "",
        "sm_inds_tp": "",
        "stk_infr": "",
        "upd_stkpc_event": "",
        "pred_close_pric": str(prev_close),
        "pred_pre": signed(abs(diff), 0) if diff > 0 else (f"-{abs(diff)}" if diff < 0 else "0"),
        "pred_pre_sig": "2" if diff > 0 else "5" if diff < 0 else "3",
    }
