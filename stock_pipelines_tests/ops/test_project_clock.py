"""The project clock's fake-now values: pinned, running at real speed, running at a chosen speed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value, parse_fake_now

START = datetime(2026, 11, 20, 15, 25, tzinfo=SEOUL)


def test_pinned_and_real_speed_values_keep_their_meaning():
    assert fake_now_value(START) == "2026-11-20T15:25:00+09:00"
    assert parse_fake_now(fake_now_value(START), wall=5_000.0) == START
    running = fake_now_value(START, 1_000.0)
    assert running == "2026-11-20T15:25:00+09:00@1000.0"
    assert parse_fake_now(running, wall=1_010.5) == START + timedelta(seconds=10.5)


def test_a_speed_runs_the_clock_that_many_times_faster_from_its_anchor():
    value = fake_now_value(START, 1_000.0, speed=60)
    assert value == "2026-11-20T15:25:00+09:00@1000.0*60"
    assert parse_fake_now(value, wall=1_010.0) == START + timedelta(minutes=10)
    assert parse_fake_now("2026-11-20T15:25:00+09:00@1000*0.5", wall=1_010.0) == START + timedelta(seconds=5)


@pytest.mark.parametrize(
    "value, message",
    [
        ("2026-11-20T15:25:00+09:00@1000*0", "positive"),
        ("2026-11-20T15:25:00+09:00@1000*fast", "could not convert"),
        ("2026-11-20T15:25:00+09:00@1000*nan", "positive"),
        ("2026-11-20T15:25:00+09:00@*60", "anchor"),
        ("2026-11-20T15:25:00@1000*60", "timezone"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(value, message):
    with pytest.raises(ValueError, match=ENV_FAKE_NOW) as error:
        parse_fake_now(value, wall=1_000.0)
    assert message in str(error.value)


def test_speed_reports_the_rate_of_the_configured_clock(monkeypatch):
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(START, 1_000.0, speed=120))
    assert clock.speed() == 120
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(START))
    assert clock.speed() == 0
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(START, 1_000.0))
    assert clock.speed() == 1


def test_a_night_speed_is_written_and_read_back_and_speed_reports_the_day_speed(monkeypatch):
    value = fake_now_value(START, 1_000.0, speed=600, night_speed=6000)
    assert value == "2026-11-20T15:25:00+09:00@1000.0*600/6000"
    assert fake_now_value(START, 1_000.0, speed=600, night_speed=600) == "2026-11-20T15:25:00+09:00@1000.0*600"
    # Friday 15:25 is in the day window (close 15:30 + 10 min): 10 wall s at 600x
    assert parse_fake_now(value, wall=1_001.0) == START + timedelta(minutes=10)
    monkeypatch.setenv(ENV_FAKE_NOW, value)
    assert clock.speed() == 600


@pytest.mark.parametrize(
    "value, message",
    [
        ("2026-11-20T15:25:00+09:00@1000*600/0", "positive"),
        ("2026-11-20T15:25:00+09:00@1000*600/", "could not convert"),
        ("2026-11-20T15:25:00+09:00@1000*/6000", "day speed"),
        ("2026-11-20T15:25:00+09:00@1000*600/night", "could not convert"),
    ],
)
def test_bad_night_speeds_are_refused_naming_the_form(value, message):
    with pytest.raises(ValueError, match=r"\*speed\[/night_speed\]") as error:
        parse_fake_now(value, wall=1_000.0)
    assert message in str(error.value)


def test_now_parses_a_value_once_and_follows_a_changed_value(monkeypatch):
    first, second = START, START + timedelta(days=3)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(first))
    assert clock.now() == first
    assert clock.parse_clock(fake_now_value(first)) is clock.parse_clock(fake_now_value(first))  # cached
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(second))
    assert clock.now() == second and clock.speed() == 0
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(first, 1_000.0, speed=60))
    assert clock.speed() == 60
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(first))
    assert clock.now() == first
