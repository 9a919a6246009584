"""The tests' independent expected bars (`truth.py`), checked against a day computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.sim.day import SimDay
from stock_pipelines_tests.truth import COLUMNS, expected_bars, outage_edge_minutes, truth_bars

DAY = date(2026, 11, 20)  # a regular session: 09:00 open, 15:20 closing auction, 15:30 close (KST)
SESSION = krx_calendar().session(DAY)


def kst(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 20, hh, mm, ss, tzinfo=SEOUL)


def us(hh: int, mm: int, ss: int = 0) -> int:
    return int(kst(hh, mm, ss).timestamp()) * 1_000_000


def test_a_hand_computed_day():
    assert (SESSION.open, SESSION.closing_auction_start, SESSION.close) == (kst(9, 0), kst(15, 20), kst(15, 30))
    trades = [
        ("005930", us(9, 0, 0), 70_000, 900),   # the opening print: in the 09:00 bar
        ("005930", us(9, 0, 30), 70_300, 5),
        ("005930", us(9, 0, 31), 69_900, 2),
        ("005930", us(9, 0, 59), 70_100, 3),    # last second of 09:00
        ("005930", us(9, 1, 0), 70_200, 1),     # first second of 09:01: its own bar
        ("000660", us(9, 0, 10), 200_000, 7),
        ("000660", us(9, 0, 10), 199_500, 4),   # same second: trade order decides the close
        ("005930", us(15, 19, 59), 70_500, 6),  # the last continuous second
        ("005930", us(15, 30, 0), 70_600, 4_000),  # the closing print: its own 15:30 bar
        ("000660", us(15, 30, 0), 201_000, 800),
    ]
    got = expected_bars(trades, SESSION)
    utc = lambda hh, mm: kst(hh, mm).astimezone(UTC)  # noqa: E731
    assert got.columns == list(COLUMNS)
    assert got.rows() == [
        # symbol, minute, open, high, low, close, volume -- worked out by hand from the list above
        ("000660", utc(9, 0), 200_000, 200_000, 199_500, 199_500, 11),
        ("000660", utc(15, 30), 201_000, 201_000, 201_000, 201_000, 800),
        ("005930", utc(9, 0), 70_000, 70_300, 69_900, 70_100, 910),
        ("005930", utc(9, 1), 70_200, 70_200, 70_200, 70_200, 1),
        ("005930", utc(15, 19), 70_500, 70_500, 70_500, 70_500, 6),
        ("005930", utc(15, 30), 70_600, 70_600, 70_600, 70_600, 4_000),
    ]


@pytest.mark.parametrize("at", [(8, 59, 59), (15, 20, 0), (15, 25, 0), (15, 30, 1)],
                         ids=["before the open", "auction start", "inside the auction", "after the close"])
def test_a_trade_breaking_a_session_rule_raises(at):
    with pytest.raises(ValueError, match="005930 trade at .* is outside continuous trading"):
        expected_bars([("005930", us(*at), 70_000, 1)], SESSION)


def test_the_simulators_own_bars_agree_with_the_truth():
    """The simulator's REST serves `SimDay.minute_bars`: a wrong aggregation there fails here."""
    sim = SimDay(DAY, seed=11, symbols=3)
    truth = truth_bars(sim)
    for code in sim.codes:
        bars = sim.minute_bars(code)
        mine = truth.filter(symbol=code)
        assert mine["minute"].dt.epoch("us").to_list() == bars.start.tolist(), code
        for column in ("open", "high", "low", "close", "volume"):
            assert mine[column].to_list() == getattr(bars, column).tolist(), (code, column)


def test_outage_edge_minutes_are_the_minutes_cut_through():
    assert outage_edge_minutes(kst(10, 0, 25), kst(10, 30, 40)) == [
        kst(10, 0).astimezone(UTC), kst(10, 30).astimezone(UTC)]
    assert outage_edge_minutes(kst(10, 0), kst(10, 30)) == []
