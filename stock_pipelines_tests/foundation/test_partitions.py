"""The shared trading-day partitions definition equals the calendar's trading days."""

from datetime import date, datetime

from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.market import SEOUL, krx_calendar


def test_partition_keys_2025_2026_equal_the_calendars_trading_days():
    keys = trading_day_partitions.get_partition_keys(current_time=datetime(2027, 1, 10, tzinfo=SEOUL))
    in_range = [k for k in keys if "2025-01-01" <= k <= "2026-12-31"]
    expected = [d.isoformat() for d in krx_calendar().trading_days(date(2025, 1, 1), date(2026, 12, 31))]
    assert in_range == expected
    assert len(expected) > 480  # two years of sessions, not an empty comparison
    assert "2026-06-03" not in in_range and "2026-11-19" in in_range


def test_partitions_are_in_seoul_time_and_start_at_the_first_session():
    assert trading_day_partitions.timezone == "Asia/Seoul"
    assert trading_day_partitions.get_first_partition_key() == "2020-01-02"


def test_todays_partition_exists_during_the_session():
    during = datetime(2026, 11, 20, 10, 0, tzinfo=SEOUL)
    assert trading_day_partitions.get_partition_keys(current_time=during)[-1] == "2026-11-20"
