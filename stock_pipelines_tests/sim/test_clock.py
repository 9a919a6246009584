"""The simulated clock: accelerated, pinned, moved; with a fake wall clock."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW
from stock_pipelines.sim.clock import SimClock
from stock_pipelines.sim.exchange_config import ExchangeConfig

START = datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL)


class Wall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_runs_at_its_speed_and_re_anchors_on_change():
    wall = Wall()
    clock = SimClock(START, speed=60, wall=wall)
    wall.now += 10
    assert clock.now() == datetime(2026, 11, 20, 9, 10, tzinfo=SEOUL)
    clock.set(speed=1)
    wall.now += 30
    assert clock.now() == datetime(2026, 11, 20, 9, 10, 30, tzinfo=SEOUL)


def test_pinned_clock_stands_still_until_released():
    wall = Wall()
    clock = SimClock(START, pinned=True, wall=wall)
    wall.now += 100
    assert clock.now() == START
    clock.set(pinned=False)
    wall.now += 5
    assert clock.now() == datetime(2026, 11, 20, 9, 0, 5, tzinfo=SEOUL)
    clock.set(at=datetime(2026, 11, 20, 15, 0, tzinfo=SEOUL), pinned=True)
    wall.now += 5
    assert clock.state() == {"now": "2026-11-20T15:00:00+09:00", "speed": 1.0, "pinned": True}


def test_refuses_naive_times_and_bad_speeds():
    with pytest.raises(ValueError, match="timezone"):
        SimClock(datetime(2026, 11, 20, 9, 0))
    with pytest.raises(ValueError, match="speed"):
        SimClock(START, speed=0)
    with pytest.raises(ValueError, match="timezone"):
        SimClock(START).set(at=datetime(2026, 11, 20, 9, 0))


@pytest.mark.parametrize(
    "now, day",
    [
        ("2026-12-01T12:20:00+09:00", date(2026, 12, 1)),  # a trading day: that day
        ("2026-12-05T10:00:00+09:00", date(2026, 12, 4)),  # Saturday: the Friday before
        ("2026-12-25T10:00:00+09:00", date(2026, 12, 24)),  # Christmas: the day before
    ],
)
def test_the_simulated_day_defaults_to_the_latest_session_by_the_project_clock(monkeypatch, now, day):
    monkeypatch.setenv(ENV_FAKE_NOW, now)
    assert ExchangeConfig().resolved_day() == day
