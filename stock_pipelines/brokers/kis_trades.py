"""KIS today's trades: GET .../quotations/inquire-time-itemconclusion, tr_id FHPST01060000.

30 trades a call at or before the second FID_INPUT_HOUR_1, newest first; each row has the time
(`stck_cntg_hour` HHMMSS), the price (`stck_pbpr` in the official sample's output2, `stck_prpr`
accepted too), the quantity (`cnqn`) and the day's volume after it (`acml_vol`). Today's session
only. The next page starts at the oldest row's second again (inclusive): trades sharing that
second may straddle the page boundary, and rows seen twice are merged by `acml_vol`.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from stock_pipelines.brokers.kis import KisClient
from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.brokers.trades import ClientTradeHistory, TradeFetch, build_trades
from stock_pipelines.market import SEOUL

TRADES_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemconclusion"
TRADES_TR_ID = "FHPST01060000"
TRADES_PAGE = 30
ONE_SECOND = timedelta(seconds=1)


class KisTradeHistory(ClientTradeHistory):
    name = "kis"
    rows_per_call = TRADES_PAGE
    whole_day = False  # a call pages back from the window's end only
    client: KisClient

    def serves(self, day: date) -> bool:
        return day == self.client.now().astimezone(SEOUL).date()

    def trades(self, symbol: str, day: date, start: datetime, end: datetime) -> TradeFetch:
        now = self.client.now().astimezone(SEOUL)
        if not self.serves(day):
            raise BrokerError(f"KIS {TRADES_TR_ID} serves today's trades only: {day} is not {now.date()}")
        start, end = start.astimezone(SEOUL), min(end.astimezone(SEOUL), now)
        calls, rows = 0, []
        seen: set[str] = set()
        rejected: Counter[str] = Counter()
        cursor = (end - timedelta(microseconds=1)).replace(microsecond=0)
        while cursor >= start.replace(microsecond=0):
            body = self.client.quotation(TRADES_PATH, TRADES_TR_ID, {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": symbol,
                "FID_INPUT_HOUR_1": f"{cursor:%H%M%S}",
            })
            calls += 1
            output = body.get("output2") or []
            if not isinstance(output, list):
                raise BrokerError(f"KIS {TRADES_TR_ID}: output2 is {type(output).__name__}, expected a list")
            page = [self._row(day, item) for item in output if isinstance(item, dict) and any(item.values())]
            rows.extend(page)
            times = [r["ts"] for r in page if isinstance(r["ts"], datetime)]
            if len(page) < TRADES_PAGE or not times:
                break
            fresh = {str(r["cum"]) for r in page} - seen
            seen |= fresh
            oldest = min(times)
            if fresh:
                cursor = oldest
            else:
                # a full page inside one second, all seen: the rest of that second is out of reach
                rejected["second_overflow"] += 1
                cursor = oldest - ONE_SECOND
        trades = build_trades(rows, symbol, start, end, f"rest_{self.name}", rejected)
        return TradeFetch(trades=trades, calls=calls, rejected=rejected)

    @staticmethod
    def _row(day: date, item: dict[str, object]) -> dict[str, object]:
        try:
            ts: datetime | None = datetime.strptime(f"{day:%Y%m%d}{item['stck_cntg_hour']}", "%Y%m%d%H%M%S").replace(
                tzinfo=SEOUL)
        except (KeyError, ValueError):
            ts = None
        return {"ts": ts, "price": item.get("stck_pbpr", item.get("stck_prpr")), "qty": item.get("cnqn"),
                "cum": item.get("acml_vol")}
