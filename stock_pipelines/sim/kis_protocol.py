"""The KIS Open API wire format the simulator speaks: paths, tr_ids, envelopes, rows, frames.

Sources (docs/simulator.md lists what was verified and what was not): the official samples in
koreainvestment/open-trading-api (examples_llm/domestic_stock/inquire_time_itemchartprice,
inquire_time_dailychartprice, inquire_daily_itemchartprice, ccnl_krx) for parameter, field and
column names; stock_pipelines_tests/fixtures/wire/ holds replies in those layouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US
from stock_pipelines.sim.day import SymbolTrades, price_limits, tick_size

TOKEN_PATH = "/oauth2/tokenP"
APPROVAL_PATH = "/oauth2/Approval"
ITEMCHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"
DAILYCHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice"
PERIODCHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"
WS_PATH = "/tryitout/H0STCNT0"
WS_PATHS = ("/tryitout", "/tryitout/{tr_id}", "/websocket")

TR_ITEMCHART = "FHKST03010200"  # today's minute bars, 30 a call
TR_DAILYCHART = "FHKST03010230"  # a past day's minute bars, 120 a call
TR_PERIODCHART = "FHKST03010100"  # daily bars (OHLC and the day's volume), 100 days a call
TR_TRADES = "H0STCNT0"  # real-time trades (WebSocket)
ITEMCHART_PAGE = 30
DAILYCHART_PAGE = 120
PERIODCHART_PAGE = 100

OK = ("0", "MCA00000", "정상처리 되었습니다.")
RATE_LIMITED = ("1", "EGW00201", "초당 거래건수를 초과하였습니다.")
TOKEN_INVALID = ("1", "EGW00121", "유효하지 않은 token 입니다.")
TOKEN_EXPIRED = ("1", "EGW00123", "기간이 만료된 token 입니다.")
# Not verified against the live API (docs/simulator.md): the codes for bad input.
BAD_INPUT_CODE = "OPSQ2001"
TR_ID_MISMATCH_CODE = "OPSQ0002"

TOKEN_TOO_OFTEN = ("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
BAD_APPKEY = ("EGW00103", "유효하지 않은 AppKey입니다.")
BAD_APPSECRET = ("EGW00105", "유효하지 않은 AppSecret입니다.")

# H0STCNT0: the 46 fields of a record, in order (open-trading-api examples_llm/.../ccnl_krx.py).
H0STCNT0_FIELDS = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS", "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1", "CNTG_VOL",
    "ACML_VOL", "ACML_TR_PBMN", "SELN_CNTG_CSNU", "SHNU_CNTG_CSNU", "NTBY_CNTG_CSNU", "CTTR",
    "SELN_CNTG_SMTN", "SHNU_CNTG_SMTN", "CCLD_DVSN", "SHNU_RATE", "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR", "OPRC_VRSS_PRPR_SIGN", "OPRC_VRSS_PRPR", "HGPR_HOUR", "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR", "LWPR_HOUR", "LWPR_VRSS_PRPR_SIGN", "LWPR_VRSS_PRPR", "BSOP_DATE",
    "NEW_MKOP_CLS_CODE", "TRHT_YN", "ASKP_RSQN1", "BIDP_RSQN1", "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN",
    "VOL_TNRT", "PRDY_SMNS_HOUR_ACML_VOL", "PRDY_SMNS_HOUR_ACML_VOL_RATE", "HOUR_CLS_CODE",
    "MRKT_TRTM_CLS_CODE", "VI_STND_PRC",
)
assert len(H0STCNT0_FIELDS) == 46

# WebSocket control replies (msg_cd, msg1).
WS_SUBSCRIBED = ("OPSP0000", "SUBSCRIBE SUCCESS")
WS_UNSUBSCRIBED = ("OPSP0001", "UNSUBSCRIBE SUCCESS")
WS_ALREADY = ("OPSP0002", "ALREADY IN SUBSCRIBE")
WS_NOT_SUBSCRIBED = ("OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
WS_MAX_OVER = ("OPSP0008", "MAX SUBSCRIBE OVER")
WS_BAD_JSON = ("OPSP0007", "JSON PARSING ERROR : invalid json format")
WS_BAD_APPROVAL = ("OPSP0011", "invalid approval : NOT FOUND")
WS_BAD_TR_ID = ("OPSP0009", "SUBSCRIBE ERROR : invalid tr_id")


def envelope(code: tuple[str, str, str], **outputs: object) -> dict[str, object]:
    rt_cd, msg_cd, msg1 = code
    return {**outputs, "rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}


def error(msg_cd: str, msg1: str) -> dict[str, object]:
    return {"rt_cd": "1", "msg_cd": msg_cd, "msg1": msg1}


def sign(diff: int) -> str:
    """PRDY_VRSS_SIGN: 2 up, 3 unchanged, 5 down (1 and 4, at the limits, are not simulated)."""
    return "2" if diff > 0 else "5" if diff < 0 else "3"


def hhmmss(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us // US, SEOUL).strftime("%H%M%S")


def summary_output(name: str, prev_close: int, last_px: int | None, acml_vol: int, acml_value: int) -> dict:
    """output1 of FHKST03010200 / FHKST03010230: the symbol's state as of the call."""
    px = last_px if last_px is not None else prev_close
    diff = px - prev_close
    return {
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": sign(diff),
        "prdy_ctrt": f"{diff / prev_close * 100:.2f}",
        "stck_prdy_clpr": str(prev_close),
        "acml_vol": str(acml_vol),
        "acml_tr_pbmn": str(acml_value),
        "hts_kor_isnm": name,
        "stck_prpr": str(px),
    }


def period_summary_output(summary: dict[str, str], code: str, day_px: np.ndarray) -> dict[str, str]:
    """output1 of FHKST03010100: the minute-chart summary plus the quote fields the official
    sample lists, in its order. Previous-day figures, share count and valuation ratios are not
    simulated: zero placeholders of the right shape."""
    prev_close = int(summary["stck_prdy_clpr"])
    last = int(summary["stck_prpr"])
    tick = int(tick_size(np.array([last]))[0])
    limit_down, limit_up = price_limits(prev_close)
    opened = len(day_px) > 0
    return {
        **summary,
        "stck_shrn_iscd": code,
        "prdy_vol": "0",
        "stck_mxpr": str(limit_up),
        "stck_llam": str(limit_down),
        "stck_oprc": str(int(day_px[0]) if opened else 0),
        "stck_hgpr": str(int(day_px.max()) if opened else 0),
        "stck_lwpr": str(int(day_px.min()) if opened else 0),
        "stck_prdy_oprc": "0",
        "stck_prdy_hgpr": "0",
        "stck_prdy_lwpr": "0",
        "askp": str(last + tick),
        "bidp": str(last),
        "prdy_vrss_vol": "0",
        "vol_tnrt": "0.00",
        "stck_fcam": "0",
        "lstn_stcn": "0",
        "cpfn": "0",
        "hts_avls": "0",
        "per": "0.00",
        "eps": "0.00",
        "pbr": "0.00",
        "itewhol_loan_rmnd_ratem": "0.00",
    }


def bar_row(day_yyyymmdd: str, start_us: int, o: int, h: int, lo: int, c: int, vol: int, value: int) -> dict:
    """One output2 row (start-labelled bar; acml_tr_pbmn is the bar's traded value)."""
    return {
        "stck_bsop_date": day_yyyymmdd,
        "stck_cntg_hour": hhmmss(start_us),
        "stck_prpr": str(c),
        "stck_oprc": str(o),
        "stck_hgpr": str(h),
        "stck_lwpr": str(lo),
        "cntg_vol": str(vol),
        "acml_tr_pbmn": str(value),
    }


def day_row(day_yyyymmdd: str, o: int, h: int, lo: int, c: int, vol: int, value: int, prev_close: int) -> dict:
    """One output2 row of FHKST03010100 (period D): the day's bar and its traded volume."""
    return {
        "stck_bsop_date": day_yyyymmdd,
        "stck_clpr": str(c),
        "stck_oprc": str(o),
        "stck_hgpr": str(h),
        "stck_lwpr": str(lo),
        "acml_vol": str(vol),
        "acml_tr_pbmn": str(value),
        "flng_cls_code": "00",
        "prtt_rate": "0.00",
        "mod_yn": "N",
        "prdy_vrss_sign": sign(c - prev_close),
        "prdy_vrss": str(c - prev_close),
        "revl_issu_reas": "",
    }


@dataclass(frozen=True)
class TickContext:
    """Running per-trade state of one symbol's day, for the H0STCNT0 fields."""

    trades: SymbolTrades
    bsop_date: str
    high: np.ndarray
    low: np.ndarray
    high_idx: np.ndarray
    low_idx: np.ndarray
    value: np.ndarray
    buy_count: np.ndarray
    sell_count: np.ndarray
    buy_vol: np.ndarray
    sell_vol: np.ndarray

    @classmethod
    def build(cls, trades: SymbolTrades, bsop_date: str) -> TickContext:
        px, qty = trades.px, trades.qty
        n = len(px)
        idx = np.arange(n)
        high = np.maximum.accumulate(px)
        low = np.minimum.accumulate(px)
        new_high = np.concatenate(([True], px[1:] > high[:-1])) if n else np.zeros(0, bool)
        new_low = np.concatenate(([True], px[1:] < low[:-1])) if n else np.zeros(0, bool)
        buy = trades.side == 1
        return cls(
            trades=trades,
            bsop_date=bsop_date,
            high=high,
            low=low,
            high_idx=np.maximum.accumulate(np.where(new_high, idx, 0)),
            low_idx=np.maximum.accumulate(np.where(new_low, idx, 0)),
            value=np.cumsum(px * qty),
            buy_count=np.cumsum(buy),
            sell_count=np.cumsum(~buy),
            buy_vol=np.cumsum(np.where(buy, qty, 0)),
            sell_vol=np.cumsum(np.where(buy, 0, qty)),
        )

    def record(self, i: int, closing_print: bool) -> str:
        """The 46 '^'-separated fields of trade i."""
        t = self.trades
        px, qty, cum, prev = int(t.px[i]), int(t.qty[i]), int(t.cum[i]), t.prev_close
        open_px, high, low = int(t.px[0]), int(self.high[i]), int(self.low[i])
        value = int(self.value[i])
        buy_vol, sell_vol = int(self.buy_vol[i]), int(self.sell_vol[i])
        buy_n, sell_n = int(self.buy_count[i]), int(self.sell_count[i])
        tick = int(tick_size(np.array([px]))[0])
        is_buy = t.side[i] == 1
        ask, bid = (px, px - tick) if is_buy else (px + tick, px)
        final = int(t.cum[-1])
        fields = (
            t.code, hhmmss(int(t.ts[i])), px, sign(px - prev), px - prev, f"{(px - prev) / prev * 100:.2f}",
            f"{value / cum:.2f}", open_px, high, low, ask, bid, qty,
            cum, value, sell_n, buy_n, buy_n - sell_n, f"{buy_vol / sell_vol * 100 if sell_vol else 0:.2f}",
            sell_vol, buy_vol, "1" if is_buy else "5", f"{buy_vol / cum * 100:.2f}", f"{cum / final * 100:.2f}",
            hhmmss(int(t.ts[0])), sign(px - open_px), px - open_px,
            hhmmss(int(t.ts[self.high_idx[i]])), sign(px - high), px - high,
            hhmmss(int(t.ts[self.low_idx[i]])), sign(px - low), px - low, self.bsop_date,
            "21" if closing_print else "20", "N", qty * 3 + 7, qty * 2 + 11, qty * 40 + 1_000, qty * 45 + 900,
            f"{cum / 100_000_000 * 100:.2f}", int(cum * 0.9), "90.00", "0",
            "", open_px,
        )
        return "^".join(map(str, fields))


def data_frame(records: list[str]) -> str:
    """`0|H0STCNT0|NNN|rec1^rec2...`: unencrypted data, NNN records in one frame."""
    return f"0|{TR_TRADES}|{len(records):03d}|{'^'.join(records)}"


def ws_reply(tr_id: str, tr_key: str, code: tuple[str, str], rt_cd: str = "0", with_keys: bool = False) -> str:
    body: dict[str, object] = {"rt_cd": rt_cd, "msg_cd": code[0], "msg1": code[1]}
    if with_keys:  # the AES key and iv for encrypted tr_ids; H0STCNT0 is sent in the clear
        body["output"] = {"iv": "0123456789abcdef", "key": "abcdefghijklmnopqrstuvwxyz012345"}
    return json.dumps({"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"}, "body": body}, ensure_ascii=False)


def pingpong(at: datetime) -> str:
    return json.dumps({"header": {"tr_id": "PINGPONG", "datetime": at.strftime("%Y%m%d%H%M%S")}})
