"""The (symbol, cum) guard that lets two feeds stream the same trades into one archive."""

from __future__ import annotations

import random

from stock_pipelines.collector import dedupe
from stock_pipelines.collector.dedupe import SymbolGuard


def _trades(count: int, seed: int = 1) -> list[tuple[int, int]]:
    """(cum, qty) of a day's trades of one symbol, from a first cum that is not the day's first."""
    rng = random.Random(seed)
    cum, out = 10_000, []
    for _ in range(count):
        qty = rng.randint(1, 500)
        cum += qty
        out.append((cum, qty))
    return out


def _kept(guard: SymbolGuard, stream: list[tuple[int, int]]) -> list[int]:
    return [cum for cum, qty in stream if guard.take(cum, qty).new]


def test_two_feeds_at_any_lag_give_each_trade_once():
    trades = _trades(3_000)
    for lag in (0, 1, 17, 2_500):  # the lagging feed this many trades behind
        guard = SymbolGuard()
        merged = []
        for i in range(len(trades) + lag):
            if i < len(trades):
                merged.append(trades[i])
            if i >= lag:
                merged.append(trades[i - lag])
        kept = _kept(guard, merged)
        assert kept == [cum for cum, _ in trades], lag
        assert guard.holes == [(0, trades[0][0] - trades[0][1])]  # only what came before the first


def test_trades_one_feed_skipped_are_taken_from_the_other_late():
    trades = _trades(200)
    ahead = trades[:50] + trades[120:]  # dropped, reconnected: skipped 70 trades
    behind = trades[40:]  # the standby, a little behind
    guard = SymbolGuard()
    verdicts = [(cum, guard.take(cum, qty)) for cum, qty in ahead[:60]]
    verdicts += [(cum, guard.take(cum, qty)) for cum, qty in behind]
    verdicts += [(cum, guard.take(cum, qty)) for cum, qty in ahead[60:]]
    kept = sorted(cum for cum, v in verdicts if v.new)
    assert kept == [cum for cum, _ in trades]  # each once, none lost
    jump = [v for cum, v in verdicts if v.gap_volume]
    assert len(jump) == 1 and jump[0].gap_volume == trades[119][0] - trades[49][0]
    assert sum(v.late for _, v in verdicts) == 70  # the skipped ones, filled in late
    assert len(guard.holes) == 1  # the hole before the first trade; the skipped stretch is filled


def test_memory_is_bounded_and_a_forgotten_hole_keeps_its_trades_unverified():
    trades = _trades(3 * dedupe.MAX_HOLES + 10)
    guard = SymbolGuard()
    skipped = trades[1::3]  # a feed skipping every third trade opens a hole each time
    for cum, qty in trades[0::3] + trades[2::3]:
        guard.take(cum, qty)
    assert len(guard.holes) == dedupe.MAX_HOLES
    late = [guard.take(cum, qty) for cum, qty in skipped]
    assert all(v.new for v in late)  # none lost
    assert sum(v.unverified for v in late) > 0  # the oldest holes were forgotten: kept, flagged
    assert not guard.take(*trades[-1]).new  # a repeat above every forgotten hole is still caught


def test_a_repeat_partly_inside_a_hole_is_not_taken_as_new():
    guard = SymbolGuard()
    guard.take(100, 10)
    guard.take(200, 10)  # hole (100, 190]
    assert not guard.take(200, 50).new  # its volume (150, 200] is not entirely undelivered
    assert guard.take(150, 50).new and guard.holes == [(0, 90), (150, 190)]
