"""A collector on `clock: exchange` extrapolates between its clock reads through the exchange's day
windows: crossing from a session into a faster night it reads what the exchange reads, not the
day speed carried on into the night."""

from __future__ import annotations

import time
from datetime import date, datetime

import httpx
import pytest

from stock_pipelines.collector.clock import ExchangeClock
from stock_pipelines.market import SEOUL
from stock_pipelines.sim.runner import run_exchange

pytestmark = pytest.mark.integration
FRIDAY = date(2026, 11, 20)   # closes 15:30: its day window ends 15:40


def test_extrapolation_between_reads_follows_the_night_speed():
    start = datetime(2026, 11, 20, 15, 39, 59, tzinfo=SEOUL)
    with run_exchange(day=FRIDAY, seed=3, symbols=2, start=start, speed=60, night_speed=3600) as url:
        clock = ExchangeClock(str(url), resync_s=3600)   # one read, at the start: the rest is extrapolation
        try:
            time.sleep(2.0)
            collector_now = clock.now()
            exchange_now = datetime.fromisoformat(httpx.get(f"{url}/admin/clock", timeout=5).json()["now"])
        finally:
            clock.close()
    # ~2 wall s: 1 s of the window at 60x, then the night at 3600x (about 2 exchange hours); the day
    # speed carried on would read 15:42
    assert exchange_now > datetime(2026, 11, 20, 17, 0, tzinfo=SEOUL)
    assert abs(collector_now - exchange_now.timestamp()) < 300, (collector_now, exchange_now)


@pytest.mark.parametrize("hhmm, rate", [((8, 40), 3600.0), ((10, 0), 60.0)])
def test_a_pinned_clock_stands_still_but_tells_the_speed_it_will_run_at(hhmm, rate):
    """A heartbeat stamped while the exchange is pinned says how long until the next one: a beat
    claiming 1 s at 08:40 is stale the moment the clock is released into a night at 3600x."""
    start = datetime(2026, 11, 20, *hhmm, tzinfo=SEOUL)
    with run_exchange(day=FRIDAY, seed=3, symbols=2, start=start, speed=60, night_speed=3600, pinned=True) as url:
        clock = ExchangeClock(str(url), resync_s=3600)
        try:
            first = clock.now()
            time.sleep(0.3)
            assert clock.now() == first == start.timestamp()
            assert (clock.rate, clock.running_rate) == (0.0, rate)
        finally:
            clock.close()
