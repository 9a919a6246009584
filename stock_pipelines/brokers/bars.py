"""Turn broker rows into validated bars: refuse what is malformed, count every refusal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.market import SEOUL

PRICE_FIELDS = ("open", "high", "low", "close")


def _whole_number(value: object) -> int:
    """Brokers send numbers as strings, Kiwoom with a sign for the direction of change."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError(f"not a whole number: {value!r}")


def build_bars(
    rows: Iterable[dict[str, object]],
    symbol: str,
    start: datetime,
    end: datetime,
    source: str,
    rejected: Counter[str],
    signed_prices: bool = False,
) -> pl.DataFrame:
    """Rows of {"minute": aware datetime | None, open, high, low, close, volume} -> BAR_SCHEMA frame.

    Refused with a count in `rejected`: malformed rows, bars at or after `end` (older ones are
    the last page's expected overhang and are simply not kept), OHLC that
    contradict themselves; duplicate minutes keep the first row seen (brokers page newest first,
    so that is the freshest) and count the rest.
    """
    kept: dict[datetime, dict[str, object]] = {}
    for row in rows:
        try:
            minute = row["minute"]
            if not isinstance(minute, datetime):
                raise ValueError("no time")
            values = {name: _whole_number(row[name]) for name in (*PRICE_FIELDS, "volume")}
        except (KeyError, ValueError):
            rejected["malformed"] += 1
            continue
        if signed_prices:
            values.update({name: abs(int(values[name])) for name in PRICE_FIELDS})
        if minute < start:
            continue  # the last page reaches back past the window by design: not a broker fault
        if minute >= end:
            rejected["outside_window"] += 1
            continue
        o, h, low, c, v = (int(values[n]) for n in (*PRICE_FIELDS, "volume"))
        if min(o, h, low, c) <= 0 or v < 0 or not (low <= min(o, c) and max(o, c) <= h):
            rejected["inconsistent_ohlc"] += 1
            continue
        if minute in kept:
            rejected["duplicate"] += 1
            continue
        kept[minute] = {"minute": minute, **values}
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * len(kept),
            "minute": [m for m in kept],
            **{name: [int(r[name]) for r in kept.values()] for name in (*PRICE_FIELDS, "volume")},
            "trades": [None] * len(kept),
            "source": [source] * len(kept),
        },
        schema={**BAR_SCHEMA, "minute": pl.Datetime("us", "Asia/Seoul")},
    )
    return frame.with_columns(pl.col("minute").dt.convert_time_zone("UTC")).cast(BAR_SCHEMA).sort("minute")


def seoul_minute(yyyymmdd: str, hhmmss: str) -> datetime:
    return datetime.strptime(yyyymmdd + hhmmss, "%Y%m%d%H%M%S").replace(tzinfo=SEOUL)
