"""The recovery plan: fewest calls, most active first, tier-1 coverage subtracted."""

from datetime import date, datetime, time

import pytest

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.plan import build_plan, clipped_to, lower_bound_calls, minute_window, missing_slots

DAY = date(2026, 11, 20)


def at(hhmm: str, second: int = 0) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(hhmm), SEOUL).replace(second=second)


def downtime(start: str, end: str, symbols=("005930", "000660")) -> Gap:
    return Gap(GapKind.DOWNTIME, "c1", at(start), at(end), symbols, "no heartbeat")


def test_a_60_minute_outage_today_costs_two_calls_per_symbol():
    plan = build_plan([downtime("10:00", "11:00")], DAY, today=DAY, activity={"005930": 10, "000660": 5})
    assert [(w.symbol, w.start, w.end, w.slots, w.calls) for w in plan] == [
        ("005930", at("10:00"), at("11:00"), 60, 2),
        ("000660", at("10:00"), at("11:00"), 60, 2),
    ]


def test_past_days_use_the_120_bar_page():
    plan = build_plan([downtime("10:00", "11:00")], DAY, today=date(2026, 11, 23), activity={})
    assert [w.calls for w in plan] == [1, 1]


def test_most_active_symbols_come_first_and_unknown_ones_last():
    gaps = [downtime("10:00", "10:10", symbols=("A00001", "B00002", "C00003"))]
    plan = build_plan(gaps, DAY, today=DAY, activity={"C00003": 100, "A00001": 7})
    assert [w.symbol for w in plan] == ["C00003", "A00001", "B00002"]


def test_near_windows_of_one_symbol_are_fetched_together_when_it_costs_no_more():
    gaps = [downtime("10:00", "10:05", ("005930",)), downtime("10:15", "10:20", ("005930",))]
    plan = build_plan(gaps, DAY, today=DAY, activity={})
    assert [(w.start, w.end, w.calls) for w in plan] == [(at("10:00"), at("10:20"), 1)]


def test_far_windows_stay_apart():
    gaps = [downtime("10:00", "10:05", ("005930",)), downtime("13:00", "13:05", ("005930",))]
    plan = build_plan(gaps, DAY, today=DAY, activity={})
    assert [(w.start, w.end, w.calls) for w in plan] == [(at("10:00"), at("10:05"), 1), (at("13:00"), at("13:05"), 1)]


def test_closing_auction_minutes_have_no_bar_slots_except_the_close():
    plan = build_plan([downtime("15:10", "15:20")], DAY, today=DAY, activity={})
    assert {w.slots for w in plan} == {10}  # 15:10..15:19
    plan = build_plan([downtime("15:10", "15:30")], DAY, today=DAY, activity={})
    assert {w.slots for w in plan} == {11}  # 15:20..15:29 are the auction: no bars; plus the 15:30 print


def test_a_zero_length_sequence_gap_still_names_its_minute():
    gap = Gap(GapKind.SEQUENCE, "c1", at("10:07", 30), at("10:07", 30), ("005930",), "cum jump")
    assert minute_window(gap) == (at("10:07"), at("10:08"))
    (window,) = build_plan([gap], DAY, today=DAY, activity={})
    assert (window.slots, window.calls) == (1, 1)


def test_windows_another_archive_covered_are_not_fetched():
    covered = {"005930": [(at("10:00", 30), at("10:30"))]}  # 10:00 only partly seen: still fetched
    plan = build_plan([downtime("10:00", "11:00", ("005930",))], DAY, today=DAY, activity={}, covered=covered)
    # 10:00 and 10:30-10:59 are more than a page apart: a call each, neither asking for what was covered
    assert [(w.start, w.end, w.calls) for w in plan] == [(at("10:00"), at("10:01"), 1), (at("10:30"), at("11:00"), 1)]
    assert sum(w.slots for w in plan) == 31
    covered = {"005930": [(at("10:00"), at("11:00"))]}
    assert build_plan([downtime("10:00", "11:00", ("005930",))], DAY, today=DAY, activity={}, covered=covered) == []


def test_a_closed_day_is_an_error():
    with pytest.raises(ValueError, match="2026-11-21 is not a KRX trading day"):
        build_plan([], date(2026, 11, 21), today=DAY, activity={})


def test_coverage_by_another_archive_never_excuses_a_sequence_gap():
    seq = Gap(GapKind.SEQUENCE, "archive", at("10:07", 10), at("10:07", 40), ("005930",), "cum jump")
    covered = {"005930": [(at("10:00"), at("11:00"))]}
    (window,) = build_plan([seq, downtime("10:00", "11:00", ("005930",))], DAY, today=DAY, activity={}, covered=covered)
    assert (window.start, window.end, window.slots) == (at("10:07"), at("10:08"), 1)


def test_an_outage_through_the_close_also_fetches_the_closing_print():
    # the gap calculator clips to trading time [open, close): the gap ends at 15:30:00 exactly
    plan = build_plan([downtime("15:25", "15:30")], DAY, today=DAY, activity={"005930": 2})
    assert {(w.start, w.end, w.slots) for w in plan} == {(at("15:25"), at("15:31"), 1)}  # the 15:30 bar
    partial = build_plan([downtime("15:00", "15:28")], DAY, today=DAY, activity={})
    assert {w.end for w in partial} == {at("15:28")}  # down before the close: the print was seen


def test_the_lower_bound_counts_the_missing_minutes_once_at_the_page_size():
    # by hand: 10:00-10:25 (25 slots) and 13:40-13:52 (12) are 195 slots apart, a call each today
    missing = {"005930": [(at("10:00"), at("10:25")), (at("13:40"), at("13:52"))]}
    assert lower_bound_calls(missing, DAY, today=DAY) == 2
    # overlapping windows are one missing stretch: 10:00-10:40 is 40 slots, two 30-slot pages
    overlapping = {"005930": [(at("10:00"), at("10:25")), (at("10:10"), at("10:40")), (at("10:20"), at("10:30"))]}
    assert lower_bound_calls(overlapping, DAY, today=DAY) == 2
    assert missing_slots(overlapping, DAY) == 40
    # two short windows within one page need one call (a plan per window would spend two)
    near = {"005930": [(at("10:00"), at("10:05")), (at("10:15"), at("10:20"))]}
    assert lower_bound_calls(near, DAY, today=DAY) == 1
    # a past day's page is 120 slots; each symbol is counted on its own
    both = {"005930": [(at("10:00"), at("12:01"))], "000660": [(at("10:00"), at("10:01"))]}
    assert lower_bound_calls(both, DAY, today=date(2026, 11, 23)) == 3
    # the closing auction has no bar slots: 15:10-15:31 is 10 + the 15:30 print = 11 slots
    assert missing_slots({"005930": [(at("15:10"), at("15:31"))]}, DAY) == 11


def test_the_plan_spends_the_lower_bound_on_a_hull_free_gap_list():
    gaps = [downtime("10:00", "10:25"), downtime("13:40", "13:52"), downtime("10:10", "10:20")]
    plan = build_plan(gaps, DAY, today=DAY, activity={})
    assert sum(w.calls for w in plan) == 4  # 2 symbols x 2 outages, the overlap costs nothing


def test_a_fetch_spanning_two_gaps_is_recorded_only_for_the_gap_minutes():
    gaps = [downtime("10:00", "10:05", ("005930",)), downtime("10:15", "10:20", ("005930",))]
    (window,) = build_plan(gaps, DAY, today=DAY, activity={})
    assert (window.start, window.end) == (at("10:00"), at("10:20"))
    missing = {"005930": [(at("10:00"), at("10:05")), (at("10:15"), at("10:20"))]}
    assert [(w.symbol, w.start, w.end) for w in clipped_to([window], missing)] == [
        ("005930", at("10:00"), at("10:05")), ("005930", at("10:15"), at("10:20"))]
    assert clipped_to([window], {"000660": [(at("10:00"), at("10:20"))]}) == []


def test_a_plan_skips_the_minutes_between_gaps_when_pages_allow_and_costs_the_lower_bound():
    """Three gaps of one symbol on a past day (120-bar pages): 09:07-11:34 (147 slots), 13:56-14:09
    and 15:01-15:20. Fetched as one stretch that is 4 calls; starting each page at the first slot
    not yet returned, 3: 09:07-11:06, 11:07-11:34 (the rest of the first gap), 13:56-15:20."""
    gaps = [downtime("09:07", "11:34", ("000270",)), downtime("13:56", "14:09", ("000270",)),
            downtime("15:01", "15:20", ("000270",))]
    past = date(2026, 11, 23)
    plan = build_plan(gaps, DAY, today=past, activity={})
    missing = {"000270": [(at("09:07"), at("11:34")), (at("13:56"), at("14:09")), (at("15:01"), at("15:20"))]}
    assert sum(w.calls for w in plan) == lower_bound_calls(missing, DAY, today=past) == 3
    assert [(w.start, w.end) for w in plan] == [(at("09:07"), at("11:34")), (at("13:56"), at("15:20"))]
    assert [w.calls for w in plan] == [2, 1]
