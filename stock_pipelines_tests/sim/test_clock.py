"""The simulated clock: accelerated, pinned, moved, across nights and weekends; with a fake wall clock."""

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
    state = clock.state()
    assert (state["now"], state["speed"], state["pinned"]) == ("2026-11-20T15:00:00+09:00", 1.0, True)


def test_refuses_naive_times_and_bad_speeds():
    with pytest.raises(ValueError, match="timezone"):
        SimClock(datetime(2026, 11, 20, 9, 0))
    with pytest.raises(ValueError, match="speed must be a positive number, not 0"):
        SimClock(START, speed=0)
    with pytest.raises(ValueError, match="speed must be a positive number, not nan"):
        SimClock(START, night_speed=float("nan"))
    with pytest.raises(ValueError, match="speed must be a positive number, not inf"):
        SimClock(START).set(speed=float("inf"))
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


FRIDAY_CLOSE = datetime(2026, 11, 20, 15, 30, tzinfo=SEOUL)  # Friday; Monday 11-23 opens at 09:00


def test_runs_through_the_weekend_at_the_night_speed_and_the_session_at_the_day_speed():
    wall = Wall()
    clock = SimClock(datetime(2026, 11, 20, 15, 35, tzinfo=SEOUL), speed=60, night_speed=3600, wall=wall)
    wall.now += 5  # 5 min at 60x reach 15:40, the end of Friday's day window
    assert clock.now() == datetime(2026, 11, 20, 15, 40, tzinfo=SEOUL)
    assert clock.rate() == 3600
    night = datetime(2026, 11, 23, 8, 50, tzinfo=SEOUL) - datetime(2026, 11, 20, 15, 40, tzinfo=SEOUL)
    wall.now += night.total_seconds() / 3600 + 10  # the whole weekend at 3600x, then 10 s at 60x
    assert clock.now() == datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL)
    assert clock.state()["today"] == "2026-11-23" and clock.rate() == 60


def test_skip_jumps_from_after_the_close_to_before_the_next_open_and_honours_late_opens():
    wall = Wall()
    clock = SimClock(FRIDAY_CLOSE, speed=60, overnight="skip", wall=wall)
    wall.now += 10  # 15:30 -> 15:40 (end of the window), then straight to Monday 08:50 (+0 wall seconds)
    assert clock.now() == datetime(2026, 11, 23, 8, 50, tzinfo=SEOUL)
    wall.now += 1
    assert clock.now() == datetime(2026, 11, 23, 8, 51, tzinfo=SEOUL)
    # 2026-11-19 is the CSAT day: 10:00-16:30; the night before it ends at 09:50
    clock.set(at=datetime(2026, 11, 18, 15, 45, tzinfo=SEOUL))
    assert clock.now() == datetime(2026, 11, 19, 9, 50, tzinfo=SEOUL)
    wall.now += 410  # 09:50 -> 16:40 at 60x (the CSAT session and its margins), then to Friday 08:50
    assert clock.now() == datetime(2026, 11, 20, 8, 50, tzinfo=SEOUL)


def test_a_pinned_clock_does_not_skip_until_released():
    wall = Wall()
    night = datetime(2026, 11, 21, 12, 0, tzinfo=SEOUL)
    clock = SimClock(night, pinned=True, overnight="skip", wall=wall)
    wall.now += 100
    assert clock.now() == night
    clock.set(pinned=False)
    assert clock.now() == datetime(2026, 11, 23, 8, 50, tzinfo=SEOUL)


def test_refuses_an_unknown_overnight_mode():
    with pytest.raises(ValueError, match="overnight"):
        SimClock(START, overnight="sleep")


def test_the_start_lines_fake_now_follows_the_exchange_clock_or_says_it_cannot():
    import time

    from stock_pipelines.commands.sim import _project_clock_value
    from stock_pipelines.ops.clock import parse_fake_now

    clock = SimClock(START, speed=60)
    value = _project_clock_value(clock)
    assert value.endswith("*60.0")
    later = time.time() + 10
    assert abs((parse_fake_now(value, later) - START).total_seconds() - 600) < 5  # 10 s at 60x
    assert _project_clock_value(SimClock(START, pinned=True)) == START.isoformat()
    assert _project_clock_value(SimClock(START, speed=60, overnight="skip")) is None
    night = _project_clock_value(SimClock(START, speed=60, night_speed=600))
    assert night.endswith("*60.0/600.0")
