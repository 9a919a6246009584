"""Which bar stands for a symbol-minute: the broker's only where the archive's is missing or
incomplete, and only inside the gaps' minutes."""

from datetime import datetime

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.bars import bars_within, final_bars


def at(hhmm: str) -> datetime:
    return datetime(2026, 11, 20, int(hhmm[:2]), int(hhmm[3:]), tzinfo=SEOUL)


def bars(rows) -> pl.DataFrame:
    """(symbol, HH:MM, close, volume, source) rows; open = high = low = close."""
    return pl.DataFrame(
        [(s, at(m), c, c, c, c, v, None if src.startswith("rest_") else 1, src) for s, m, c, v, src in rows],
        schema={**BAR_SCHEMA, "minute": pl.Datetime("us", "Asia/Seoul")},
        orient="row",
    ).cast(BAR_SCHEMA)


def sources(frame: pl.DataFrame) -> list[tuple[str, str, str]]:
    return [
        (s, m.astimezone(SEOUL).strftime("%H:%M"), src)
        for s, m, src in frame.sort("symbol", "minute").select("symbol", "minute", "source").iter_rows()
    ]


def test_a_tick_bar_the_broker_confirms_keeps_its_source_and_an_incomplete_one_gives_way():
    ticks = bars([
        ("005930", "09:59", 100, 7, "ticks"),  # the minute before the crash, complete
        ("005930", "10:25", 101, 2, "ticks"),  # the restart's minute: a trade was lost
        ("005930", "11:00", 102, 5, "ticks"),  # far from any gap
    ])
    rest = bars([
        ("005930", "09:59", 100, 7, "rest_kis"),
        ("005930", "10:00", 99, 4, "rest_kis"),  # inside the outage: only the broker has it
        ("005930", "10:25", 101, 3, "rest_kis"),
    ])
    final = final_bars(ticks, [rest])
    assert sources(final) == [
        ("005930", "09:59", "ticks"),
        ("005930", "10:00", "rest_kis"),
        ("005930", "10:25", "rest_kis"),
        ("005930", "11:00", "ticks"),
    ]
    assert final.filter(pl.col("minute").dt.convert_time_zone("Asia/Seoul") == at("10:25"))["volume"].to_list() == [3]
    assert final.filter(pl.col("minute").dt.convert_time_zone("Asia/Seoul") == at("09:59"))["trades"].to_list() == [1]  # the archive's own row


def test_only_bars_inside_their_symbols_windows_are_kept():
    fetched = bars([
        ("005930", "10:00", 1, 1, "rest_kis"),
        ("005930", "10:05", 1, 1, "rest_kis"),  # between two gaps: fetched in passing
        ("005930", "10:15", 1, 1, "rest_kis"),
        ("000660", "10:00", 1, 1, "rest_kis"),  # a symbol with no window
    ])
    windows = {"005930": [(at("10:00"), at("10:05")), (at("10:15"), at("10:20"))]}
    assert sources(bars_within(fetched, windows)) == [("005930", "10:00", "rest_kis"), ("005930", "10:15", "rest_kis")]
    assert bars_within(fetched, {}).height == 0
