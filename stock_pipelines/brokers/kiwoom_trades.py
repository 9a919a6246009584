"""Kiwoom trades: the tick chart (POST /api/dostk/chart, api-id ka10079, tic_scope "1": one row
a trade), 900 rows a call, newest first from now, continued with cont-yn/next-key.

Its rows carry no cumulative volume, so the trades of a day are numbered here: the client pages
back until a row of an earlier day (or the end of what the broker keeps) and sets each trade's
`cum` to the running sum of `trde_qty` from the day's first trade. A window therefore costs every
page from now back to the start of its day, whatever its width: `rows_per_call` is the page, the
calls are (trades of today after the window's day start) / 900. A day whose start the broker no
longer keeps cannot be numbered and raises.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from stock_pipelines.brokers.bars import _whole_number
from stock_pipelines.brokers.kiwoom import KiwoomClient
from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.brokers.trades import ClientTradeHistory, TradeFetch, build_trades
from stock_pipelines.market import SEOUL, krx_calendar

TICK_CHART = "ka10079"
TICK_PAGE = 900
ROWS_KEY = "stk_tic_chart_qry"
MAX_PAGES = 2_000  # ~1.8 M trades; more means the server is looping


class KiwoomTradeHistory(ClientTradeHistory):
    name = "kiwoom"
    rows_per_call = TICK_PAGE
    whole_day = True  # every fetch pages back to the day's first trade
    client: KiwoomClient

    def serves(self, day: date) -> bool:
        # the tick chart's depth is not documented: a day it no longer keeps raises in trades()
        return day <= self.client.now().astimezone(SEOUL).date()

    def trades(self, symbol: str, day: date, start: datetime, end: datetime) -> TradeFetch:
        calls, next_key = 0, ""
        day_rows: list[dict[str, object]] = []  # newest first
        rejected: Counter[str] = Counter()
        reached_earlier_day = False
        for _ in range(MAX_PAGES):
            body, next_key = self.client.chart(TICK_CHART, {"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1"},
                                               next_key)
            calls += 1
            items = body.get(ROWS_KEY) or []
            if not isinstance(items, list):
                raise BrokerError(f"Kiwoom {TICK_CHART}: {ROWS_KEY} is not a list")
            for item in items:
                row = self._row(item) if isinstance(item, dict) else None
                if row is None:
                    rejected["malformed"] += 1
                    continue
                if row["ts"].date() > day:
                    continue
                if row["ts"].date() < day:
                    reached_earlier_day = True
                    break
                day_rows.append(row)
            if reached_earlier_day or not next_key:
                break
        else:
            raise BrokerError(f"Kiwoom {TICK_CHART}: more than {MAX_PAGES} pages for {symbol}")
        if rejected["malformed"]:
            raise BrokerError(f"Kiwoom {TICK_CHART}: {symbol} {day}: {rejected['malformed']} malformed rows; "
                              "the day's trades cannot be numbered past them")
        session = krx_calendar().session(day)
        if not reached_earlier_day and day_rows and session is not None and day_rows[-1]["ts"] > session.open:
            raise BrokerError(f"Kiwoom {TICK_CHART}: {symbol} {day}: the broker no longer keeps the day's "
                              "first trades, so its trades cannot be numbered")
        cum = 0
        for row in reversed(day_rows):
            cum += int(row["qty"])
            row["cum"] = cum
        trades = build_trades(day_rows, symbol, start, end, f"rest_{self.name}", rejected)
        return TradeFetch(trades=trades, calls=calls, rejected=rejected)

    @staticmethod
    def _row(item: dict[str, object]) -> dict[str, object] | None:
        try:
            ts = datetime.strptime(str(item["cntr_tm"]), "%Y%m%d%H%M%S").replace(tzinfo=SEOUL)
            price, qty = abs(_whole_number(item["cur_prc"])), abs(_whole_number(item["trde_qty"]))
        except (KeyError, ValueError):
            return None
        return {"ts": ts, "price": price, "qty": qty}
