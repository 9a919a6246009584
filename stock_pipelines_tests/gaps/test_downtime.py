from datetime import date, datetime, timedelta

import pytest

from stock_pipelines.gaps import GapKind, downtime_gaps, minutes_lost
from stock_pipelines.heartbeat import UpInterval, intervals_from_beats
from stock_pipelines.market import SEOUL

THU, FRI, MON = date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 9)


def at(day: date, hhmmss: str) -> datetime:
    parts = [int(p) for p in hhmmss.split(":")] + [0]
    return datetime(day.year, day.month, day.day, parts[0], parts[1], parts[2], tzinfo=SEOUL)


def up(day_a, a, day_b, b):
    return UpInterval(at(day_a, a), at(day_b, b))


def total_minutes(gaps):
    return sum(g.minutes for g in gaps)


def test_down_from_1500_to_0930_next_trading_day_loses_60_minutes():
    intervals = [up(THU, "08:50", THU, "15:00"), up(FRI, "09:30", FRI, "16:00")]
    gaps = downtime_gaps(intervals, (at(THU, "00:00"), at(FRI, "23:59")), collector="c1", symbols=["005930"])
    assert [(g.start, g.end) for g in gaps] == [
        (at(THU, "15:00"), at(THU, "15:30")),
        (at(FRI, "09:00"), at(FRI, "09:30")),
    ]
    assert total_minutes(gaps) == 60
    assert all(g.kind is GapKind.DOWNTIME and g.collector == "c1" and g.symbols == ("005930",) for g in gaps)
    # the same answer one trading day at a time, from each day's own history
    per_day = downtime_gaps(intervals[:1], THU, collector="c1") + downtime_gaps(intervals[1:], FRI, collector="c1")
    assert [(g.start, g.end) for g in per_day] == [(g.start, g.end) for g in gaps]


def test_weekend_splits_per_session_and_counts_no_weekend_time():
    intervals = [up(FRI, "08:00", FRI, "15:00"), up(MON, "09:30", MON, "16:00")]
    gaps = downtime_gaps(intervals, (at(FRI, "00:00"), at(MON, "23:00")), collector="c1")
    assert [(g.start.date(), g.minutes) for g in gaps] == [(FRI, 30), (MON, 30)]


def test_holidays_and_weekend_inside_an_outage_cost_nothing_but_the_trading_day_between_counts():
    # Thu 04-30 15:00 -> Wed 05-06 09:30: Labor Day (Fri), weekend, Mon 05-04 trades, Children's Day (Tue)
    thu, wed = date(2026, 4, 30), date(2026, 5, 6)
    gaps = downtime_gaps([up(thu, "08:00", thu, "15:00"), up(wed, "09:30", wed, "15:40")],
                         (at(thu, "00:00"), at(wed, "23:00")), collector="c1")
    assert [(g.start.date(), g.minutes) for g in gaps] == [(thu, 30), (date(2026, 5, 4), 390), (wed, 30)]


def test_outage_outside_trading_time_disappears():
    intervals = [up(THU, "08:00", THU, "16:00"), up(FRI, "08:30", FRI, "16:00")]
    assert downtime_gaps(intervals, (at(THU, "00:00"), at(FRI, "23:00")), collector="c1") == []


def test_hole_ending_two_seconds_before_the_close_is_below_threshold():
    intervals = [up(THU, "08:00", THU, "15:29:58"), up(FRI, "08:55", FRI, "16:00")]
    assert downtime_gaps(intervals, (at(THU, "00:00"), at(FRI, "23:00")), collector="c1") == []


def test_closing_auction_is_trading_time():
    intervals = [up(THU, "08:00", THU, "15:22"), up(THU, "15:28", THU, "16:00")]
    gaps = downtime_gaps(intervals, THU, collector="c1")
    assert [(g.start, g.end) for g in gaps] == [(at(THU, "15:22"), at(THU, "15:28"))]


def test_threshold_is_three_intervals_by_default():
    beats = [at(THU, "08:59:50") + timedelta(seconds=5 * i) for i in range(400)]  # every 5 s until ~09:33

    def without(first, last):  # drop the beats strictly between two instants
        return intervals_from_beats([b for b in beats if not at(THU, first) < b < at(THU, last)])

    window = (at(THU, "09:00"), at(THU, "09:30"))
    assert downtime_gaps(without("09:10:00", "09:10:15"), window, collector="c1") == []  # 15 s = 3 intervals
    gaps = downtime_gaps(without("09:10:00", "09:10:20"), window, collector="c1")  # 20 s
    assert [(g.start, g.end) for g in gaps] == [(at(THU, "09:10:00"), at(THU, "09:10:20"))]
    assert "no heartbeat from 2026-03-05 09:10:00" in gaps[0].reason
    stricter = downtime_gaps(without("09:10:00", "09:10:15"), window, collector="c1",
                             threshold=timedelta(seconds=10))
    assert [g.duration for g in stricter] == [timedelta(seconds=15)]


def test_special_sessions_first_day_of_year_and_csat_day():
    jan2, csat = date(2026, 1, 2), date(2026, 11, 19)
    # down until 10:30 on a day that opens at 10:00: 30 minutes, not 90
    assert total_minutes(downtime_gaps([up(jan2, "10:30", jan2, "16:00")], jan2, collector="c1")) == 30
    # the CSAT day closes 16:30: an outage from 15:30 still costs an hour
    assert total_minutes(downtime_gaps([up(csat, "09:00", csat, "15:30")], csat, collector="c1")) == 60


def test_now_cuts_the_window_and_a_collector_never_up_lost_the_whole_session():
    gaps = downtime_gaps([up(THU, "08:50", THU, "09:40")], THU, collector="c1", now=at(THU, "10:00"))
    assert [(g.start, g.end) for g in gaps] == [(at(THU, "09:40"), at(THU, "10:00"))]
    assert total_minutes(downtime_gaps([], THU, collector="c1")) == 390
    assert downtime_gaps([], date(2026, 6, 3), collector="c1") == []  # election day: closed


def test_minutes_lost_summarises_per_collector_and_kind():
    gaps = downtime_gaps([up(THU, "08:50", THU, "15:00")], THU, collector="c1") + downtime_gaps(
        [up(THU, "08:50", THU, "14:00")], THU, collector="c2"
    )
    summary = minutes_lost(gaps)
    assert summary.select("collector", "kind", "gaps", "minutes").rows() == [
        ("c1", "downtime", 1, 30.0),
        ("c2", "downtime", 1, 90.0),
    ]


def test_naive_window_is_refused():
    with pytest.raises(ValueError, match="naive"):
        downtime_gaps([], (datetime(2026, 3, 5, 9), datetime(2026, 3, 5, 10)), collector="c1")
