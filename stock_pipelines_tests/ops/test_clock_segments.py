"""The project clock walks the exchange's day windows and nights: for the same anchor, speeds and
wall time, `STOCK_PIPELINES_FAKE_NOW` and the simulated exchange's clock read the same instant.
Pure: the wall time is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import advance_us, from_us, segment_at, to_us
from stock_pipelines.ops.clock import fake_now_value, parse_clock, parse_fake_now
from stock_pipelines.sim.clock import SimClock

ANCHOR = 1_000.0


class Wall:
    def __init__(self) -> None:
        self.now = ANCHOR

    def __call__(self) -> float:
        return self.now


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SEOUL)


def _close(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 0.001   # float wall seconds: a microsecond either way


@pytest.mark.parametrize(
    "start, label",
    [
        ("2026-11-19T15:00", "a night: CSAT Thursday (close 16:30) into Friday's 08:50 window"),
        ("2026-11-20T14:00", "a weekend: Friday 15:40 to Monday 08:50"),
        ("2026-12-30T14:00", "holidays: 31 December, New Year, a weekend, to the 10:00 open of 4 January"),
    ],
)
def test_the_project_clock_reads_what_the_exchange_clock_reads_across(start, label):
    wall = Wall()
    exchange = SimClock(_at(start), speed=600, night_speed=6000, wall=wall)
    value = fake_now_value(_at(start), ANCHOR, speed=600, night_speed=6000)
    # sample every 0.5 wall s over 200 s: through the close, the time between windows and the next open
    crossed_a_night = False
    for step in range(1, 401):
        wall.now = ANCHOR + step * 0.5
        exchange_now, project_now = exchange.now(), parse_fake_now(value, wall.now)
        assert abs((project_now - exchange_now).total_seconds()) < 0.01, (label, wall.now, exchange_now, project_now)
        crossed_a_night |= exchange.rate() == 6000
    assert crossed_a_night and project_now.date() > _at(start).date(), label


def test_night_runs_at_the_night_speed_and_the_day_at_the_day_speed():
    # Friday 15:30 close: the day window ends 15:40, Monday's opens 08:50 (65 h 10 min later)
    friday = _at("2026-11-20T15:30")
    clock = parse_clock(fake_now_value(friday, ANCHOR, speed=600, night_speed=6000))
    assert _close(clock.now(ANCHOR + 1), friday + timedelta(minutes=10))   # 10 min at 600x: the window's end
    night_wall = (65 * 3600 + 10 * 60) / 6000
    assert _close(clock.now(ANCHOR + 1 + night_wall), _at("2026-11-23T08:50"))
    assert _close(clock.now(ANCHOR + 1 + night_wall + 1), _at("2026-11-23T09:00"))  # back at 600x
    assert clock.rate(ANCHOR + 2) == 6000 and clock.rate(ANCHOR + 1 + night_wall + 1) == 600


def test_one_speed_and_a_pinned_clock_keep_their_meaning():
    start = _at("2026-11-20T15:30")
    assert parse_fake_now(fake_now_value(start, ANCHOR, speed=600), ANCHOR + 3600) == start + timedelta(days=25)
    assert parse_clock(fake_now_value(start)).rate(ANCHOR) == 0
    # before its anchor (a process started during the soak's startup) it runs back at the day speed
    assert parse_fake_now(fake_now_value(start, ANCHOR, 600, 6000), ANCHOR - 1) == start - timedelta(minutes=10)


def test_segments_outside_the_calendar_run_on_as_day():
    assert segment_at(to_us(_at("2100-01-04T12:00"))) == (None, True)
    start = to_us(_at("2100-01-04T12:00"))
    assert advance_us(start, 10, 600, 6000) == start + 6000 * 1_000_000


def test_epoch_microseconds_round_trip_and_refuse_naive_times():
    at = _at("2026-11-20T10:00:00.123457")
    assert to_us(at) == 1_795_136_400_123_457
    assert from_us(to_us(at)) == at and from_us(to_us(at)).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive datetime 2026-11-20T10:00:00: .*timezone-aware"):
        to_us(datetime(2026, 11, 20, 10))
