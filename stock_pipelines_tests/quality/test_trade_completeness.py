"""Trade completeness from the cum chain (quality/trade_completeness.py), on hand-built days."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from stock_pipelines.quality import trade_level
from stock_pipelines.quality.trade_completeness import RANGE_SCHEMA, trade_completeness

OPEN = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 09:00 Seoul
AUCTION = datetime(2026, 11, 20, 6, 20, tzinfo=UTC)  # 15:20 Seoul
CLOSE = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)


def trades(rows: list[tuple[str, int, int, int]]) -> pl.DataFrame:
    """(symbol, seconds after the open (-1: the closing print), qty, cum)."""
    return pl.DataFrame(
        [
            (sym, CLOSE if at == -1 else OPEN + timedelta(seconds=at), qty, cum)
            for sym, at, qty, cum in rows
        ],
        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "qty": pl.Int64, "cum": pl.Int64},
        orient="row",
    )


def totals(**volumes: int) -> pl.DataFrame:
    return pl.DataFrame({"symbol": list(volumes), "broker_volume": list(volumes.values())})


def row(result, symbol: str) -> dict:
    return result.symbols.filter(pl.col("symbol") == symbol).row(0, named=True)


def ranges(result, symbol: str) -> list[tuple]:
    found = result.ranges.filter(pl.col("symbol") == symbol)
    return found.select("after_cum", "to_cum", "volume", "where").rows()


WHOLE = [("A", 1, 10, 10), ("A", 2, 5, 15), ("A", 3, 20, 35), ("A", -1, 65, 100)]


def test_a_whole_chain_closed_by_the_closing_print_is_complete_without_a_broker_total():
    result = trade_completeness(trades(WHOLE), None, AUCTION)
    a = row(result, "A")
    assert (a["trades"], a["volume_present"], a["day_volume"]) == (4, 100, 100)
    assert a["day_volume_from"] == "closing_print"
    assert (a["share"], a["missing_ranges"], a["missing_volume"], a["problem"]) == (1.0, 0, 0, None)
    assert result.complete == ["A"] and result.day_complete and result.overall_share == 1.0
    assert result.ranges.height == 0 and result.bar_level.height == 0


def test_gaps_at_the_start_in_the_middle_and_at_the_end_are_ranges_of_shares():
    # lacks (0,30] and (50,70]
    day = [("B", 5, 10, 40), ("B", 6, 10, 50), ("B", 9, 20, 90), ("B", 10, 10, 100)]
    result = trade_completeness(trades(day), totals(B=130), AUCTION)
    assert ranges(result, "B") == [(0, 30, 30, "start"), (50, 70, 20, "middle"), (100, 130, 30, "end")]
    b = row(result, "B")
    assert (b["volume_present"], b["day_volume"], b["day_volume_from"]) == (50, 130, "broker")
    assert (b["missing_ranges"], b["missing_volume"]) == (3, 80)
    assert b["share"] == pytest.approx(50 / 130)
    assert result.below.rows() == [("B", pytest.approx(50 / 130))]
    assert result.bar_level.rows() == [("B", pytest.approx(50 / 130), "trades missing")]
    assert not result.day_complete and result.complete == []


def test_the_tail_is_unproven_without_a_closing_print_or_a_day_total():
    open_ended = [("C", 1, 10, 10), ("C", 2, 10, 20)]
    result = trade_completeness(trades(open_ended), None, AUCTION)
    c = row(result, "C")
    assert c["day_volume"] is None and c["share"] is None and c["day_volume_from"] is None
    assert (c["volume_present"], c["missing_volume"]) == (20, 0)  # the chain itself is whole
    assert result.unproven == ["C"] and result.complete == []
    assert result.bar_level.rows() == [("C", None, "day volume unknown")]
    assert result.overall_share is None and not result.day_complete
    # the same trades, with the broker's total matching the last cum: proven complete
    assert trade_completeness(trades(open_ended), totals(C=20), AUCTION).complete == ["C"]


def test_a_duplicated_trade_counts_once_and_disorder_changes_nothing():
    repeated = WHOLE + [WHOLE[1], WHOLE[1], WHOLE[3]]
    shuffled = trades(repeated).sample(fraction=1.0, shuffle=True, seed=3)
    result = trade_completeness(shuffled, totals(A=100), AUCTION)
    a = row(result, "A")
    assert (a["trades"], a["duplicates"], a["volume_present"]) == (4, 3, 100)
    assert (a["share"], a["problem"]) == (1.0, None)
    assert result.symbols.equals(trade_completeness(trades(repeated), totals(A=100), AUCTION).symbols)
    assert result.totals()["trades_present"] == 4 and result.totals()["duplicates"] == 3


def test_bad_chains_are_named_problems_and_never_complete():
    overlap = [("D", 1, 10, 10), ("D", 2, 15, 20)]  # 20 - 15 = 5 < 10
    conflicting = [("E", 1, 10, 10), ("E", 1, 7, 10), ("E", 2, 10, 20)]
    backwards = [("F", 5, 10, 10), ("F", 3, 10, 20)]  # the higher cum printed earlier
    above = [("G", 1, 10, 10), ("G", 2, 10, 20)]
    not_positive = [("H", 1, 10, 10), ("H", 2, 0, 10), ("H", 3, -5, 20)]
    frame = trades(overlap + conflicting + backwards + above + not_positive)
    result = trade_completeness(frame, totals(D=20, E=20, F=20, G=15, H=20), AUCTION)
    assert dict(result.with_problems.rows()) == {
        "D": "qty_inconsistent",
        "E": "conflicting_duplicate",
        "F": "cum_decreasing",
        "G": "cum_above_day_total",
        "H": "qty_not_positive, conflicting_duplicate",
    }
    assert ranges(result, "H") == [(10, 20, 10, "middle")]  # a negative qty proves no share present
    assert result.complete == [] and not result.day_complete
    assert row(result, "D")["volume_present"] == 20  # the overlap is not counted twice
    assert {s: why for s, _, why in result.bar_level.rows()}["F"] == "cum_decreasing"


def test_a_symbol_the_broker_reports_without_any_trade_present_misses_its_day():
    result = trade_completeness(trades(WHOLE), totals(A=100, Z=40, QUIET=0), AUCTION)
    assert ranges(result, "Z") == [(0, 40, 40, "start")]
    z = row(result, "Z")
    assert (z["trades"], z["volume_present"], z["share"], z["missing_volume"]) == (0, 0, 0.0, 40)
    assert "QUIET" not in result.symbols["symbol"].to_list()  # nothing traded: not judged
    assert result.overall_share == pytest.approx(100 / 140)


def test_the_closing_print_outranks_a_broker_total_that_counts_after_hours_volume():
    result = trade_completeness(trades(WHOLE), totals(A=350), AUCTION)
    a = row(result, "A")
    assert (a["day_volume"], a["day_volume_from"], a["share"]) == (100, "closing_print", 1.0)


def test_the_threshold_is_a_share_of_the_day_volume_per_symbol_and_overall():
    # J lacks 1 share of 10,000 (99.99%: at the threshold), K lacks 2 (99.98%: below)
    day = [("J", 1, 9_999, 9_999), ("K", 1, 9_998, 9_998)]
    result = trade_completeness(trades(day), totals(J=10_000, K=10_000), AUCTION)
    assert result.below.rows() == [("K", pytest.approx(0.9998))]
    assert result.complete == [] and result.overall_share == pytest.approx(0.99985)
    assert [s for s, _, _ in result.bar_level.rows()] == ["K"]


def test_rows_without_a_symbol_or_qty_are_counted_not_dropped_silently():
    without_qty = trades([("A", 4, 1, 101)]).with_columns(qty=None)
    without_symbol = trades([("X", 1, 1, 1)]).with_columns(symbol=None)
    frame = pl.concat([trades(WHOLE), without_qty, without_symbol])
    result = trade_completeness(frame, None, AUCTION)
    assert row(result, "A")["problem"] == "null_values"
    assert result.unattributed == 1 and result.totals()["unattributed_rows"] == 1


def test_missing_columns_are_refused_with_their_names():
    with pytest.raises(ValueError, match="trades lack column\\(s\\) cum"):
        trade_completeness(trades(WHOLE).drop("cum"))


def test_an_empty_day_has_nothing_to_judge():
    result = trade_completeness(trades([]), None, AUCTION)
    assert result.symbols.height == 0 and result.ranges.schema == pl.Schema(RANGE_SCHEMA)
    assert result.overall_share is None and not result.day_complete


def test_the_report_section_names_the_symbols_left_at_bar_level_and_why():
    day = trades(WHOLE + [("B", 5, 10, 40), ("C", 1, 10, 10), ("D", 1, 10, 10), ("D", 2, 15, 20)])
    result = trade_completeness(day, totals(B=50, D=20), AUCTION)
    assert trade_level.verdict(result) == (
        "not complete at trade level (76.4706% of the day's volume present): 1 symbols below 99.9900%, "
        "1 without a known day volume, 1 with a bad cum chain, the day below 99.9900%"
    )
    assert trade_level.rows(result) == [
        ["B", "20.0000%", "trades missing", 2, 40, 50, "broker"],
        ["D", "100.0000%", "qty_inconsistent", 0, 0, 20, "broker"],
        ["C", "unknown", "day volume unknown", 0, 0, None, "-"],
    ]
    summary = trade_level.summary(result)
    assert summary["bar_level_symbols"] == {"B": 0.2, "C": None, "D": 1.0}
    assert summary["symbols_complete"] == 1 and summary["day_complete"] is False
    assert trade_level.verdict(trade_completeness(trades(WHOLE), None, AUCTION)) == (
        "complete at trade level: 100.0000% of the day's volume present"
    )
