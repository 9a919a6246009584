"""The trade tier's plan: holes proven by the cum chain, gaps past the last archived trade, the
budget spent on the most active symbols whole, and windows fetched before not planned again."""

from datetime import UTC, date, datetime, timedelta

import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.recovery.trades import TradeWindow, missing_windows, plan_trades
from stock_pipelines.archive.trade_merge import merge_by_cum
from stock_pipelines.archive.ticks import TICKS_SCHEMA

DAY = date(2026, 11, 20)
SESSION = krx_calendar().session(DAY)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=SEOUL).astimezone(UTC)


def trades(rows) -> pl.DataFrame:
    return pl.DataFrame([(s, t, 100, q, c) for s, t, q, c in rows],
                        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "price": pl.Int64,
                                "qty": pl.Int64, "cum": pl.Int64}, orient="row")


def test_a_cum_jump_is_a_window_between_its_two_trades_with_the_missing_volume():
    day = trades([("A", at(9, 0), 10, 10), ("A", at(9, 5), 5, 15), ("A", at(9, 30, 7), 4, 40)])
    (window,) = missing_windows(day, [], SESSION, {"A": 100})
    assert (window.start, window.end) == (at(9, 5), at(9, 30, 8))
    assert window.missing_volume == 21  # 40 - 4 - 15
    assert window.estimated_trades == 4  # 21 shares at the symbol's mean of 19/3 a trade


def test_the_day_start_and_a_gap_past_the_last_trade_are_windows_too():
    day = trades([("A", at(9, 10), 10, 30), ("A", at(10, 0), 5, 35)])
    gap = Gap(GapKind.DOWNTIME, "c1", at(15, 0).astimezone(SEOUL), SESSION.close, ("A", "B"), "down")
    windows = {(w.symbol, w.start, w.end, w.missing_volume) for w in missing_windows(day, [gap], SESSION, {"A": 1})}
    close_end = SESSION.close.astimezone(UTC) + timedelta(seconds=1)
    assert windows == {
        ("A", SESSION.open.astimezone(UTC), at(9, 10, 1), 20),  # the first trade's cum says 20 shares came before
        ("A", at(10, 0), close_end, None),  # from the last archived trade to the close, print included
        ("B", SESSION.open.astimezone(UTC), close_end, None),  # nothing archived at all
    }


def test_a_complete_chain_has_no_window_even_inside_a_gap():
    day = trades([("A", at(9, 0), 10, 10), ("A", at(11, 0), 5, 15), ("A", at(15, 30), 1, 16)])
    gap = Gap(GapKind.DOWNTIME, "c1", at(10, 0).astimezone(SEOUL), at(10, 30).astimezone(SEOUL), ("A",), "down")
    assert missing_windows(day, [gap], SESSION, {"A": 1}) == []


def window(symbol: str, rank: int, estimated: int, hh: int = 10) -> TradeWindow:
    return TradeWindow(symbol, at(hh, 0), at(hh, 30), estimated, estimated, rank)


def test_the_budget_buys_whole_symbols_most_active_first_and_names_the_rest():
    windows = [window("A", 0, 290), window("A", 0, 30, hh=13), window("B", 1, 600), window("C", 2, 50)]
    plan = plan_trades(windows, {}, rows_per_call=30, budget=20)
    # A costs 11 + 2 = 13 calls; B (21) no longer fits; C (3) does
    assert [w.symbol for w in plan.windows] == ["A", "A", "C"]
    assert plan.over_budget == ["B"]
    assert plan.estimated_calls == 16 and plan.budget_left == 4


def test_windows_fetched_before_are_not_planned_again():
    windows = [window("A", 0, 100), window("B", 1, 100)]
    done = {"A": [(at(9, 59), at(10, 31))], "B": [(at(10, 10), at(10, 31))]}  # B's only in part
    plan = plan_trades(windows, done, rows_per_call=30, budget=1_000)
    assert [w.symbol for w in plan.windows] == ["B"]


def test_the_merge_never_duplicates_and_the_archive_wins():
    archived = trades([("A", at(9, 0), 10, 10), ("A", at(9, 2), 5, 30)]).with_columns(source=pl.lit("kis"))
    fetched = trades([("A", at(9, 0), 10, 10), ("A", at(9, 1), 15, 25), ("A", at(9, 2), 5, 30)]).with_columns(
        source=pl.lit("rest_kis"))
    full = {name: pl.lit(None, dtype) for name, dtype in TICKS_SCHEMA.items() if name not in fetched.columns}
    merged = merge_by_cum(archived.with_columns(**full), fetched.with_columns(**full))
    assert merged["cum"].to_list() == [10, 25, 30]
    assert merged["source"].to_list() == ["kis", "rest_kis", "kis"]
