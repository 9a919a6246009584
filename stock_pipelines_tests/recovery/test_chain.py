"""Pruning the bar plan with the archive's `cum` chain: only minutes the chain cannot prove
complete are asked of the broker."""

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.recovery.chain import unproven_windows
from stock_pipelines.recovery.plan import build_plan, missing_slots, symbol_windows

DAY = date(2026, 11, 20)
SESSION = krx_calendar().session(DAY)
PAST = date(2026, 11, 23)  # recovered the next trading day: 120 bars a call
SYMBOL, SPARSE, UNSEEN = "005930", "000660", "035720"


def at(hhmm: str, second: float = 0) -> datetime:
    whole = int(second)
    return datetime.combine(DAY, time.fromisoformat(hhmm), SEOUL).replace(
        second=whole, microsecond=round((second - whole) * 1e6))


def ticks(*trades: tuple[str, datetime, int, int]) -> pl.DataFrame:
    """(symbol, ts, qty, cum) rows as raw_ticks holds them (ts in UTC)."""
    return pl.DataFrame(
        [(s, ts.astimezone(UTC), qty, cum) for s, ts, qty, cum in trades],
        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "qty": pl.Int64, "cum": pl.Int64},
        orient="row",
    )


def downtime(start: datetime, end: datetime, symbols=(SYMBOL,)) -> Gap:
    return Gap(GapKind.DOWNTIME, "c1", start, end, symbols, "no heartbeat")


def plan_for(gaps, archived: pl.DataFrame):
    unproven = unproven_windows(archived, SESSION)
    plan = build_plan(gaps, DAY, today=PAST, activity={}, unproven=unproven)
    return [(w.symbol, w.start, w.end, w.slots) for w in plan], unproven




def closed(cum: int, symbol: str = SYMBOL) -> tuple[str, datetime, int, int]:
    """The closing print continuing the chain from `cum`: no tail after it."""
    return symbol, SESSION.close, 7, cum + 7


def test_a_chain_unbroken_across_a_stale_window_needs_no_bar():
    archived = ticks((SYMBOL, at("09:00"), 10, 10), (SYMBOL, at("10:00", 30), 5, 15),
                     (SYMBOL, at("10:40", 10), 5, 20), closed(20))
    gap = downtime(at("10:05"), at("10:35"))
    plan, unproven = plan_for([gap], archived)
    assert plan == []
    assert unproven == {SYMBOL: []}
    suspected = symbol_windows([gap], close=SESSION.close)
    assert missing_slots(suspected, DAY) == 30  # what the chain pruned: every minute of the window


def test_a_hole_keeps_exactly_its_minutes_from_the_trade_before_to_the_trade_after():
    # 10 shares missing between 10:02:59.5 and 10:07:00: they may be in any of 10:02..10:07
    archived = ticks((SYMBOL, at("09:00"), 10, 10), (SYMBOL, at("10:02", 59.5), 5, 15),
                     (SYMBOL, at("10:07"), 5, 30), (SYMBOL, at("11:00"), 5, 35), closed(35))
    plan, _ = plan_for([downtime(at("09:50"), at("10:30"))], archived)
    assert plan == [(SYMBOL, at("10:02"), at("10:08"), 6)]


def test_the_tail_after_the_last_archived_trade_is_kept():
    archived = ticks((SYMBOL, at("09:00"), 10, 10), (SYMBOL, at("14:10", 30), 5, 15))
    plan, unproven = plan_for([downtime(at("14:00"), at("14:30"))], archived)
    assert plan == [(SYMBOL, at("14:10"), at("14:30"), 20)]
    assert unproven[SYMBOL] == [(at("14:10"), SESSION.close + timedelta(minutes=1))]


def test_a_first_trade_with_shares_before_it_keeps_the_head():
    # cum - qty = 90 at the first archived trade: 90 shares traded from the open to 09:20:15
    archived = ticks((SYMBOL, at("09:20", 15), 10, 100), (SYMBOL, at("09:30"), 5, 105), closed(105))
    plan, _ = plan_for([downtime(at("09:00"), at("09:40"))], archived)
    assert plan == [(SYMBOL, at("09:00"), at("09:21"), 21)]
    # the same trade as the day's first (cum == qty): nothing before it is missing
    complete = ticks((SYMBOL, at("09:20", 15), 10, 10), (SYMBOL, at("09:30"), 5, 15), closed(15))
    assert plan_for([downtime(at("09:00"), at("09:40"))], complete)[0] == []


def test_a_sparse_symbol_silent_in_a_window_its_chain_spans_is_pruned_an_unseen_one_kept():
    archived = ticks((SPARSE, at("09:30"), 3, 3), (SPARSE, at("11:45", 20), 4, 7), closed(7, SPARSE))
    gap = downtime(at("10:00"), at("11:00"), symbols=(SPARSE, UNSEEN))
    plan, _ = plan_for([gap], archived)
    # no trade of SPARSE is missing from 09:30 to 11:45; UNSEEN was never archived: nothing proven
    assert plan == [(UNSEEN, at("10:00"), at("11:00"), 60)]


def test_a_hole_reaching_the_closing_print_keeps_the_close_slot():
    archived = ticks((SYMBOL, at("09:00"), 10, 10), (SYMBOL, at("15:10", 5), 5, 15),
                     (SYMBOL, SESSION.close, 9, 40))
    plan, _ = plan_for([downtime(at("15:00"), SESSION.close)], archived)
    # 15:10..15:19 and the closing slot 15:30: the auction minutes hold no bar slot
    assert [(s, start, slots) for s, start, _end, slots in plan] == [(SYMBOL, at("15:10"), 11)]


def test_inconsistent_quantities_prove_nothing():
    archived = ticks((SYMBOL, at("09:00"), 10, 10), (SYMBOL, at("10:10", 30), 8, 15),
                     (SYMBOL, at("10:20"), 5, 20), closed(20))
    plan, _ = plan_for([downtime(at("10:00"), at("10:30"))], archived)
    assert plan == [(SYMBOL, at("10:00"), at("10:11"), 11)]  # cum 10 + 8 != 15 at 10:10:30
