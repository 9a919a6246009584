"""What an earlier recovery run fetched counts as done only for minutes that had closed then."""

from datetime import date, datetime

import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.plan import FetchWindow, build_plan
from stock_pipelines.recovery.reuse import done_windows, fetched_frame, reusable_bars

DAY = date(2026, 11, 20)


def at(hhmm: str, second: int = 0) -> datetime:
    return datetime(2026, 11, 20, int(hhmm[:2]), int(hhmm[3:]), second, tzinfo=SEOUL)


def test_only_the_closed_minutes_of_a_fetched_window_are_done_and_only_for_that_broker():
    windows = [
        FetchWindow("005930", at("10:00"), at("10:31"), 31, 2, 0),
        FetchWindow("000660", at("10:40"), at("10:45"), 5, 1, 1),
    ]
    frame = fetched_frame(windows, "kis", at("10:30", 20))  # 10:30 still forming; 10:40 not yet begun
    done = done_windows(frame, "kis")
    assert done == {"005930": [(at("10:00"), at("10:30"))]}
    assert done_windows(frame, "kiwoom") == {}

    gap = Gap(GapKind.DOWNTIME, "c1", at("10:00"), at("10:31"), ("005930",), "down")
    (left,) = build_plan([gap], DAY, today=DAY, activity={}, fetched=done)
    assert (left.start, left.end, left.calls) == (
        at("10:30"),
        at("10:31"),
        1,
    )  # only the forming minute again


def test_reusable_bars_are_the_brokers_inside_done_windows():
    previous = pl.DataFrame(
        {
            "symbol": ["005930", "005930", "005930", "000660"],
            "minute": [at("10:00"), at("10:29"), at("10:30"), at("10:00")],
            "open": [1, 2, 3, 4],
            "high": [1, 2, 3, 4],
            "low": [1, 2, 3, 4],
            "close": [1, 2, 3, 4],
            "volume": [5, 6, 7, 8],
            "trades": [None, None, None, 3],
            "source": ["rest_kis", "rest_kis", "rest_kis", "ticks_other_archive"],
        }
    ).with_columns(pl.col("minute").dt.convert_time_zone("UTC"), pl.col("trades").cast(pl.UInt32))
    done = {"005930": [(at("10:00"), at("10:30"))], "000660": [(at("10:00"), at("10:30"))]}
    reused = reusable_bars(previous, done, "kis")
    assert reused["minute"].dt.convert_time_zone("Asia/Seoul").dt.strftime("%H:%M").to_list() == [
        "10:00",
        "10:29",
    ]
    assert reused["minute"].dtype == pl.Datetime("us", "UTC") and set(reused["source"]) == {"rest_kis"}
    assert reusable_bars(previous, done, "kiwoom").height == 0
