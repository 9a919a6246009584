"""archive.bars: one-minute OHLCV with the session's open tolerance and closing-print bar."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from stock_pipelines.archive.bars import minute_bars
from stock_pipelines.archive.schema import MinuteBarsSchema
from stock_pipelines.archive.ticks import ingest_day
from stock_pipelines.market import SEOUL, krx_calendar

from .conftest import DAY, seoul_us, write_day

SESSION = krx_calendar().session(DAY)


def minute(hour: int, minute_: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute_, tzinfo=SEOUL).astimezone(UTC)


def test_bars_ohlcv_by_trade_order_with_open_and_closing_print_bars(archive_env):
    trades = [
        ("kis", "005930", seoul_us(8, 59, 58), 100, 5, 5),  # in the open tolerance: the 09:00 bar
        ("kis", "005930", seoul_us(9, 0, 10), 103, 1, 6),
        ("kis", "005930", seoul_us(9, 0, 10), 99, 2, 8),  # same second: cum orders the trades
        ("kis", "005930", seoul_us(9, 0, 59), 101, 3, 11),
        ("kis", "005930", seoul_us(9, 1, 0), 102, 4, 15),
        ("kis", "005930", seoul_us(15, 19, 59), 110, 1, 16),
        ("kis", "005930", seoul_us(15, 30, 0), 111, 50, 66),  # the closing print: its own bar
        ("kis", "000660", seoul_us(9, 5, 0), 500, 7, 7),
    ]
    write_day(archive_env, "kis-1", trades)
    ticks = ingest_day([(archive_env, "")], DAY, SESSION).ticks
    bars = minute_bars(ticks.sample(fraction=1.0, shuffle=True, seed=3), SESSION)
    MinuteBarsSchema.validate(bars)
    rows = {(r["symbol"], r["minute"]): r for r in bars.iter_rows(named=True)}
    assert list(rows) == [
        ("000660", minute(9, 5)),
        ("005930", minute(9, 0)),
        ("005930", minute(9, 1)),
        ("005930", minute(15, 19)),
        ("005930", minute(15, 30)),
    ]
    first = rows[("005930", minute(9, 0))]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"], first["trades"]) == (
        100,
        103,
        99,
        101,
        11,
        4,
    )
    close = rows[("005930", minute(15, 30))]
    assert (close["open"], close["close"], close["volume"], close["trades"]) == (111, 111, 50, 1)
    assert set(bars["source"]) == {"ticks"}
    assert bars["volume"].sum() == ticks["qty"].sum()
    assert minute(15, 30).astimezone(SEOUL) in SESSION.minute_bar_starts()


def test_no_ticks_no_bars():
    empty = pl.DataFrame(
        schema={
            "symbol": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "price": pl.Int64,
            "qty": pl.Int64,
            "cum": pl.Int64,
        }
    )
    assert minute_bars(empty, SESSION).height == 0


def test_presorted_path_matches_the_sorting_path(archive_env):
    trades = [
        ("kis", sym, seoul_us(9, m, s), 100 + m + s, 1 + s, 0)
        for sym in ("005930", "000660")
        for m in range(3)
        for s in range(0, 60, 7)
    ]
    cums: dict[str, int] = {}
    numbered = []
    for src, sym, ts, px, qty, _ in sorted(trades, key=lambda t: t[2]):
        cums[sym] = cums.get(sym, 0) + qty
        numbered.append((src, sym, ts, px, qty, cums[sym]))
    write_day(archive_env, "kis-1", numbered)
    ticks = ingest_day([(archive_env, "")], DAY, SESSION).ticks
    assert minute_bars(ticks, SESSION, presorted=True).equals(minute_bars(ticks.reverse(), SESSION))


def test_streamed_bars_keep_trade_order_over_many_batches_of_rows():
    """Enough rows for polars' streaming engine to cut them into many morsels: every bar's open
    and close must still be its first and last trade in cum order."""
    import numpy as np

    rng = np.random.default_rng(11)
    n, symbols = 600_000, 40
    sym = np.sort(rng.integers(0, symbols, n))
    ts = np.empty(n, dtype=np.int64)
    for s in range(symbols):  # each symbol's trades through the session, in time order
        where = sym == s
        ts[where] = np.sort(rng.integers(seoul_us(9, 0), seoul_us(15, 19), int(where.sum())))
    ticks = pl.DataFrame(
        {
            "symbol": [f"{s:06d}" for s in sym],
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "price": rng.integers(1_000, 2_000, n),
            "qty": rng.integers(1, 10, n),
        }
    ).with_columns(cum=pl.col("qty").cum_sum().over("symbol"))
    bars = minute_bars(ticks.lazy(), SESSION, presorted=True)
    expected = (
        ticks.with_columns(minute=pl.col("ts").dt.truncate("1m"))
        .group_by("symbol", "minute", maintain_order=True)
        .agg(open=pl.col("price").first(), close=pl.col("price").last(), trades=pl.len())
    )
    assert bars.height == expected.height > 10_000
    got = bars.select("symbol", "minute", "open", "close", pl.col("trades").cast(pl.UInt32))
    assert got.equals(expected.with_columns(pl.col("trades").cast(pl.UInt32)).sort("symbol", "minute"))
