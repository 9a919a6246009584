"""The simulated KIS `inquire-time-itemconclusion` (FHPST01060000, 주식현재가 당일시간대별체결):
today's trades, 30 a call, newest first, those at or before the second FID_INPUT_HOUR_1.

Rows are the trades the WebSocket streamed (the same `SimDay` columns), up to the exchange
clock. The endpoint serves today's session only: an hour before the first trade answers an
empty output2. Field names follow the official sample (koreainvestment/open-trading-api
examples_llm/domestic_stock/inquire_time_itemconclusion): the trade's price in `stck_pbpr`,
its quantity in `cnqn`, the day's volume after it in `acml_vol`; docs/simulator.md lists what
is not verified (the page size of 30 comes from an older official sample's comment)."""

from __future__ import annotations

import numpy as np

from stock_pipelines.sim import kis_protocol as kis
from stock_pipelines.sim.day import SymbolTrades, tick_size

TRADES_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemconclusion"
TR_TRADES_TODAY = "FHPST01060000"
TRADES_PAGE = 30


def trade_rows(trades: SymbolTrades, upto_us: int, limit: int = TRADES_PAGE) -> tuple[list[dict[str, str]], bool]:
    """The newest `limit` trades with ts before the end of second `upto_us`, newest first, and
    whether older trades remain (the gateway's tr_cont "M")."""
    end = int(np.searchsorted(trades.ts, upto_us + kis.US - 1, side="right"))
    begin = max(0, end - limit)
    rows = [_row(trades, i) for i in range(end - 1, begin - 1, -1)]
    return rows, begin > 0


def _row(trades: SymbolTrades, i: int) -> dict[str, str]:
    px, prev = int(trades.px[i]), trades.prev_close
    tick = int(tick_size(np.array([px]))[0])
    buy = trades.side[i] == 1
    diff = px - prev
    return {
        "stck_cntg_hour": kis.hhmmss(int(trades.ts[i])),
        "stck_pbpr": str(px),
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": kis.sign(diff),
        "prdy_ctrt": f"{diff / prev * 100:.2f}",
        "askp": str(px if buy else px + tick),
        "bidp": str(px - tick if buy else px),
        "tday_rltv": "100.00",
        "acml_vol": str(int(trades.cum[i])),
        "cnqn": str(int(trades.qty[i])),
    }


def summary(name: str, trades: SymbolTrades, prev_day_volume: int = 0) -> dict[str, str]:
    """output1: the symbol as of the call (the official sample's output1 columns)."""
    last = int(trades.px[-1]) if len(trades.px) else trades.prev_close
    diff = last - trades.prev_close
    return {
        "stck_prpr": str(last),
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": kis.sign(diff),
        "prdy_ctrt": f"{diff / trades.prev_close * 100:.2f}",
        "acml_vol": str(int(trades.cum[-1]) if len(trades.cum) else 0),
        "prdy_vol": str(prev_day_volume),
        "rprs_mrkt_kor_name": "KOSPI",
        "hts_kor_isnm": name,
    }
