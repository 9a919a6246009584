"""The project clock for a test that processes a past trading day: pinned to 08:00 of the next
trading day, so the day is closed and in the past whatever the date the suite runs on."""

from datetime import date, datetime, time

import pytest

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value


def the_morning_after(day: date) -> datetime:
    return datetime.combine(krx_calendar().next_trading_day(day), time(8, 0), SEOUL)


def pin_clock_after(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(the_morning_after(day)))
