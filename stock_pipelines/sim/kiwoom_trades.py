"""The simulated Kiwoom tick chart (api-id ka10079 with `tic_scope` "1": one row a trade) on
POST /api/dostk/chart: 900 rows a call, newest first from the exchange clock back through
today and `history_days` trading days before it, continued with `cont-yn`/`next-key`.

Rows carry what the broker's documented row carries (Kiwoom REST API guide, 주식틱차트조회요청):
`cntr_tm` YYYYMMDDHHMMSS, `cur_prc`, `trde_qty`, `open_pric`/`high_pric`/`low_pric` (equal to
the price for one-trade ticks) and empty adjustment fields; no cumulative volume, so a client
numbers a day's trades by paging back to its first one. `base_dt` is not part of the request
(a third-party measurement reports the live server ignoring it). The next-key is opaque to
the client (here: the date and index of the next older trade). Not verified: docs/simulator.md.
"""

from __future__ import annotations

from datetime import date, datetime

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import US, SymbolTrades

TICK_CHART_API_ID = "ka10079"
TICK_PAGE = 900
ROWS_KEY = "stk_tic_chart_qry"


def tick_row(trades: SymbolTrades, i: int) -> dict[str, str]:
    px = str(int(trades.px[i]))
    return {
        "cur_prc": px,
        "trde_qty": str(int(trades.qty[i])),
        "cntr_tm": datetime.fromtimestamp(int(trades.ts[i]) // US, SEOUL).strftime("%Y%m%d%H%M%S"),
        "open_pric": px,
        "high_pric": px,
        "low_pric": px,
        "upd_stkpc_tp": "",
        "upd_rt": "",
        "bic_inds_tp": "",
        "sm_inds_tp": "",
        "stk_infr": "",
        "upd_stkpc_event": "",
        "pred_close_pric": "",
    }


def parse_key(next_key: str) -> tuple[date, int] | None:
    """(day, index of the newest trade to serve) from a next-key; None when malformed."""
    day_text, _, index = next_key.partition(":")
    try:
        return datetime.strptime(day_text, "%Y%m%d").date(), int(index)
    except ValueError:
        return None


def tick_page(days: list[tuple[date, SymbolTrades]], cursor: tuple[date, int] | None,
              limit: int = TICK_PAGE) -> tuple[list[dict[str, str]], str]:
    """One page from `days` (newest day first, each day's trades as of now) starting at `cursor`
    (None: the newest trade); the rows and the next-key ("" when nothing older remains)."""
    rows: list[dict[str, str]] = []
    started = cursor is None
    for day, trades in days:
        index = len(trades.ts) - 1
        if not started:
            if day != cursor[0]:
                continue
            started, index = True, min(cursor[1], index)
        while index >= 0:
            if len(rows) == limit:
                return rows, f"{day:%Y%m%d}:{index}"
            rows.append(tick_row(trades, index))
            index -= 1
    return rows, ""
