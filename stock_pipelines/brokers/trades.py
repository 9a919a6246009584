"""Trade history behind one protocol: the trades of symbol S on day D in [start, end), each with
its cumulative day volume `cum` (with the symbol, the trade's identity at every broker)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import polars as pl

from stock_pipelines.brokers.bars import _whole_number
from stock_pipelines.brokers.transport import BrokerRestClient

# A recovered trade: what raw_ticks holds of a trade, with the broker endpoint as its source.
TRADE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "price": pl.Int64(),
    "qty": pl.Int64(),
    "cum": pl.Int64(),
    "source": pl.String(),
}


@dataclass
class TradeFetch:
    trades: pl.DataFrame
    calls: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> rows refused

    def __post_init__(self) -> None:
        self.trades = self.trades.select(list(TRADE_SCHEMA))


class TradeHistorySource(Protocol):
    name: str
    rows_per_call: int  # the endpoint's page size, for budgets and lower bounds
    whole_day: bool  # True: any window costs the pages back to its day's first trade (fetch a symbol once)

    def serves(self, day: date) -> bool:
        """Whether the broker still keeps `day`'s trades (KIS: today only)."""

    def trades(self, symbol: str, day: date, start: datetime, end: datetime) -> TradeFetch:
        """Trades of `symbol` on trading day `day` with start <= time < end, oldest first."""


class ClientTradeHistory:
    """A trade history served by a bar client: its tokens, rate limit and call counter."""

    def __init__(self, client: BrokerRestClient) -> None:
        self.client = client

    @property
    def calls(self) -> int:
        return self.client.calls


def build_trades(
    rows: Iterable[dict[str, object]], symbol: str, start: datetime, end: datetime, source: str,
    rejected: Counter[str],
) -> pl.DataFrame:
    """Rows of {"ts": aware datetime | None, "price", "qty", "cum"} -> TRADE_SCHEMA frame, by cum.

    Rows outside [start, end) are not kept (paging overlaps the window by design); malformed or
    impossible rows (price or qty not positive, cum below qty) are counted in `rejected`; a cum
    seen twice keeps the first row when both agree (pages overlap at their boundary second) and
    counts a `conflicting_duplicate` when they do not.
    """
    kept: dict[int, tuple[datetime, int, int]] = {}
    for row in rows:
        try:
            ts = row["ts"]
            if not isinstance(ts, datetime):
                raise ValueError("no time")
            price, qty, cum = (abs(_whole_number(row[name])) for name in ("price", "qty", "cum"))
        except (KeyError, ValueError):
            rejected["malformed"] += 1
            continue
        if price <= 0 or qty <= 0 or cum < qty:
            rejected["impossible_values"] += 1
            continue
        if not start <= ts < end:
            continue
        if cum in kept:
            if kept[cum] != (ts, price, qty):
                rejected["conflicting_duplicate"] += 1
            continue
        kept[cum] = (ts, price, qty)
    order = sorted(kept)
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * len(order),
            "ts": [kept[c][0] for c in order],
            "price": [kept[c][1] for c in order],
            "qty": [kept[c][2] for c in order],
            "cum": order,
            "source": [source] * len(order),
        },
        schema={**TRADE_SCHEMA, "ts": pl.Datetime("us", "Asia/Seoul")},
    )
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC")).cast(TRADE_SCHEMA)


def trade_history(client) -> TradeHistorySource:
    """The trade history of a bar client (KisClient or KiwoomClient): same tokens, rate limit and
    call counter."""
    from stock_pipelines.brokers.kis import KisClient
    from stock_pipelines.brokers.kis_trades import KisTradeHistory
    from stock_pipelines.brokers.kiwoom_trades import KiwoomTradeHistory

    inner = getattr(client, "source", client)  # a GatedSource wraps the client
    return KisTradeHistory(inner) if isinstance(inner, KisClient) else KiwoomTradeHistory(inner)
