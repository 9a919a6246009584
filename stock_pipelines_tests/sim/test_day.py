"""The synthetic day: deterministic, prefix-consistent, on the tick grid, shaped by the session."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest

from stock_pipelines.archive.record import is_valid_symbol
from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import SimDay, price_limits, tick_size, to_tick_grid, universe
from stock_pipelines.sim.sessions import NotATradingDay

DAY = date(2026, 11, 20)  # a regular Friday session, 09:00-15:30
CSAT = date(2026, 11, 19)  # CSAT day: 10:00-16:30 (calendar override)
US = 1_000_000


@pytest.fixture(scope="module")
def sim() -> SimDay:
    return SimDay(DAY, seed=7, symbols=40)


def _columns(day: SimDay) -> list[bytes]:
    return [a.tobytes() for a in (day.sym, day.ts, day.px, day.qty, day.cum, day.side, day.time_order)]


def test_same_seed_same_day_byte_for_byte(sim):
    assert _columns(SimDay(DAY, seed=7, symbols=40)) == _columns(sim)
    assert _columns(SimDay(DAY, seed=8, symbols=40)) != _columns(sim)
    assert _columns(SimDay(date(2026, 11, 18), seed=7, symbols=40)) != _columns(sim)


def test_small_universe_is_a_prefix_of_a_large_one(sim):
    large = SimDay(DAY, seed=7, symbols=120)
    assert large.codes[:40] == sim.codes
    n = len(sim)
    assert np.array_equal(large.ts[:n], sim.ts) and np.array_equal(large.cum[:n], sim.cum)


def test_universe_codes_real_first_and_valid_at_full_market_size():
    codes = [code for code, _ in universe(2_700)]
    assert codes[:2] == ["005930", "000660"]
    assert len(set(codes)) == 2_700 and all(is_valid_symbol(code) for code in codes)


def test_prices_on_the_krx_tick_grid(sim):
    assert np.all(sim.px % tick_size(sim.px.astype(np.int64)) == 0)
    assert list(tick_size(np.array([1_999, 2_000, 4_999, 5_000, 19_999, 20_000, 49_999, 50_000, 199_999,
                                    200_000, 499_999, 500_000]))) == [1, 5, 5, 10, 10, 50, 50, 100, 100, 500, 500, 1000]
    assert list(to_tick_grid(np.array([1_999.4, 2_002.4, 70_049, 70_051]))) == [1_999, 2_000, 70_000, 70_100]


def test_within_daily_price_limit(sim):
    prev = sim.prev_close[sim.sym.astype(np.int64)]
    assert np.all(sim.px <= prev * 1.3) and np.all(sim.px >= prev * 0.7)
    assert price_limits(10_000) == (7_000, 13_000) and price_limits(72_600) == (50_900, 94_300)


def test_session_shape_opening_print_no_closing_auction_trades_one_closing_print(sim):
    session = sim.session
    open_us, close_us = sim.open_us, sim.close_us
    auction_us = int(session.closing_auction_start.timestamp()) * US
    assert np.all(sim.ts % US == 0)  # whole seconds, as KIS reports HHMMSS
    for code in sim.codes:
        t = sim.trades(code)
        assert t.ts[0] == open_us and t.ts[-1] == close_us  # opening and closing prints
        inner = t.ts[1:-1]
        assert np.all((inner >= open_us) & (inner < auction_us))  # nothing in 15:20-15:30
        assert np.all(np.diff(t.ts) >= 0)
        assert np.array_equal(np.cumsum(t.qty), t.cum)  # previous cum + qty == cum
    assert int(np.sum(sim.ts == close_us)) == len(sim.codes)


def test_heavy_tailed_activity(sim):
    minutes = [len(np.unique((sim.trades(c).ts - sim.open_us) // (60 * US))) for c in sim.codes]
    counts = [len(sim.trades(c).ts) for c in sim.codes]
    full = len(sim.session.minute_bar_starts())
    assert minutes[0] == full  # the most active symbol trades every minute
    top_per_second = counts[0] / ((sim.session.closing_auction_start - sim.session.open).total_seconds())
    assert top_per_second >= 1.0
    assert min(minutes) < full  # and some symbols skip minutes
    assert max(counts) > 10 * min(counts)


def test_minute_bars_follow_the_session_convention(sim):
    starts = {int(s.timestamp()) * US for s in sim.session.minute_bar_starts()}
    for code in sim.codes[:10]:
        bars = sim.minute_bars(code)
        t = sim.trades(code)
        assert set(bars.start.tolist()) <= starts
        assert int(bars.volume.sum()) == int(t.qty.sum()) and int(bars.cum[-1]) == int(t.cum[-1])
        assert int(bars.start[-1]) == sim.close_us  # the closing print's bar at 15:30
        assert np.all(bars.low <= np.minimum(bars.open, bars.close))
        assert np.all(bars.high >= np.maximum(bars.open, bars.close))


def test_minute_bars_as_of_an_instant_leave_the_current_bar_forming(sim):
    at = int(datetime(2026, 11, 20, 10, 0, 30, tzinfo=SEOUL).timestamp()) * US
    bars = sim.minute_bars("005930", until_us=at)
    t = sim.trades("005930")
    forming = (t.ts >= at - 30 * US) & (t.ts <= at)
    assert int(bars.start[-1]) == at - 30 * US
    assert int(bars.volume[-1]) == int(t.qty[forming].sum())


def test_special_session_is_respected():
    csat = SimDay(CSAT, seed=1, symbols=5)
    assert csat.session.open.hour == 10 and csat.session.close.hour == 16
    local = [datetime.fromtimestamp(ts / US, SEOUL) for ts in (csat.ts.min(), csat.ts.max())]
    assert local[0].time().isoformat() == "10:00:00" and local[1].time().isoformat() == "16:30:00"
    starts = [b for b in csat.minute_bars("005930").start]
    assert datetime.fromtimestamp(starts[-2] / US, SEOUL).strftime("%H:%M") <= "16:19"


def test_a_non_trading_date_is_an_error_naming_the_date():
    with pytest.raises(NotATradingDay, match="2026-11-21 is not a KRX trading day"):
        SimDay(date(2026, 11, 21))
    with pytest.raises(NotATradingDay, match="2026-06-03"):
        SimDay(date(2026, 6, 3))  # local elections: closed by the override table


def test_lazy_day_gives_the_same_trades_before_and_after_build(sim):
    lazy = SimDay(DAY, seed=7, symbols=40, eager=False)
    assert not lazy.ready
    before = lazy.trades("000660", until_us=sim.open_us + 3_600 * US)
    bars_before = lazy.minute_bars("005930")
    lazy.build()
    assert lazy.ready and _columns(lazy) == _columns(sim)
    after = sim.trades("000660", until_us=sim.open_us + 3_600 * US)
    assert np.array_equal(before.cum, after.cum) and np.array_equal(before.px, after.px)
    assert np.array_equal(bars_before.volume, sim.minute_bars("005930").volume)
