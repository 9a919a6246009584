"""The soak's fault schedule: seeded, overlapping, inside every session of its days."""

from datetime import date, datetime, timedelta

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.soak.faults import KINDS
from stock_pipelines.soak.options import FULL_START, QUICK_START, trading_days
from stock_pipelines.soak.schedule import FULL_GROUPS, plan, plan_groups

COLLECTORS = ["kis-1", "kis-2", "kiwoom-1"]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    days = trading_days(FULL_START, 5)
    assert plan(3, days, COLLECTORS, quick=False) == plan(3, days, COLLECTORS, quick=False)
    assert plan(3, days, COLLECTORS, quick=False) != plan(4, days, COLLECTORS, quick=False)


def test_the_full_week_spans_the_csat_day_and_a_weekend_and_every_fault_kind_is_played():
    days = trading_days(FULL_START, 5)
    assert days == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23),
                    date(2026, 11, 24)]
    faults = plan(7, days, COLLECTORS, quick=False)
    assert {f.kind for f in faults} == set(KINDS)
    assert {f.day for f in faults} == set(days)          # one group a day
    by_instant: dict[tuple, int] = {}
    for fault in faults:
        if fault.kind == "collector_sigkill":
            by_instant[(fault.day, fault.minute)] = by_instant.get((fault.day, fault.minute), 0) + 1
    assert max(by_instant.values()) == 3, "three collectors SIGKILLed at one instant"


def test_the_disk_floor_joins_its_group_and_leaves_every_other_draw_of_a_seed_where_it_was():
    days = trading_days(FULL_START, 5)
    for seed in range(30):
        faults = plan(seed, days, COLLECTORS, quick=False)
        floors = [f for f in faults if f.kind == "disk_floor"]
        assert len(floors) == 1 and floors[0].subject == "archive", seed
        assert 30 <= floors[0].duration_min <= 60
        group_kinds = {kind for kind, _, _ in FULL_GROUPS[4]}
        same_day = [f for f in faults if f.day == floors[0].day and f.kind != "disk_floor"]
        assert {f.kind for f in same_day} == group_kinds, seed
        assert abs(floors[0].minute - min(f.minute for f in same_day)) <= 5, seed
        # the plan the seed gave before the disk floor joined: the same faults, ids, days and minutes
        before = plan_groups(seed, days, COLLECTORS, FULL_GROUPS, {})
        assert [f for f in faults if f.kind != "disk_floor"] == before


def test_each_days_faults_overlap_and_fall_inside_its_session():
    for seed in range(20):
        for quick, days in ((True, trading_days(QUICK_START, 2)), (False, trading_days(FULL_START, 5))):
            faults = plan(seed, days, COLLECTORS, quick=quick)
            for day in {f.day for f in faults}:
                session = krx_calendar().session(day)
                todays = [f for f in faults if f.day == day]
                starts = [_at(f) for f in todays]
                ends = [_at(f) + timedelta(minutes=f.duration_min) for f in todays]
                assert session.open < min(starts) and max(ends) < session.close - timedelta(minutes=30), (seed, todays)
                assert max(starts) - min(starts) <= timedelta(minutes=5), (seed, todays)
                assert max(ends) > max(starts), f"seed {seed}: nothing still broken when the last fault starts"


def test_the_quick_list_is_two_days_of_short_overlapping_faults():
    days = trading_days(QUICK_START, 2)
    assert days == [date(2026, 11, 19), date(2026, 11, 20)]   # the CSAT day, then a Friday
    faults = plan(7, days, COLLECTORS, quick=True)
    assert {f.kind for f in faults} == {"collector_sigkill", "feed_stall", "collector_sigstop", "redis_kill",
                                        "egw00201_storm"}
    assert len([f for f in faults if f.kind == "collector_sigkill"]) == 2


def _at(fault) -> datetime:
    return datetime.combine(fault.day, datetime.min.time(), tzinfo=SEOUL) + timedelta(minutes=fault.minute)
