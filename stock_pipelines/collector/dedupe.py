"""Each trade once, whichever feed delivers it first: the collector's (symbol, cum) guard.

With a hot standby both brokers stream every trade, so every trade arrives twice, one feed a few
milliseconds (or, after a reconnect, seconds) behind the other. A trade's `cum` is the symbol's
cumulative volume after it, so the trade owns the volume interval (cum - qty, cum]; the trades of
a day tile the volume line without overlap. Per symbol the guard keeps

- the high-water mark: the highest cum taken in, and
- the holes below it: volume intervals no feed has delivered yet (a feed that reconnected
  skipped them, or the feed that is ahead delivered the later trades first).

A trade above the mark is new (a hole opens if it does not follow the mark); a trade at or below
it is new only if it lies in a hole (then it fills it), else it is a duplicate. This is exact at
any lag between the feeds, where a window of recent cums misses a duplicate older than the window,
and it costs a mark and a few intervals per symbol, not thousands of cums: holes exist only while
one feed has skipped what the other has not delivered yet, and the oldest are forgotten beyond
`MAX_HOLES` (a trade later arriving in a forgotten hole is kept and counted as `unverified`: the
archive reader drops a repeated (symbol, cum), and a lost trade could not be recovered).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

MAX_HOLES = 64  # per symbol; the first trade's hole (what came before the collector started) is one


@dataclass
class Verdict:
    new: bool
    late: bool = False  # fills a hole below the mark (arrived after a later trade)
    gap_volume: int = 0  # volume skipped between the mark and this trade (a hole opened)
    unverified: bool = False  # below a forgotten hole's top: kept, cannot tell if seen


class SymbolGuard:
    __slots__ = ("mark", "holes", "forgotten_top")

    def __init__(self) -> None:
        self.mark = 0  # highest cum taken in; 0: nothing yet
        self.holes: list[tuple[int, int]] = []  # sorted, disjoint (low, high]: volume not delivered
        self.forgotten_top = 0  # the top of the highest hole forgotten under MAX_HOLES

    def take(self, cum: int, qty: int) -> Verdict:
        low = cum - qty
        if cum > self.mark:
            first = self.mark == 0
            gap = max(0, low - self.mark)
            if gap:
                self._open(self.mark, low)
            self.mark = cum
            return Verdict(True, gap_volume=0 if first else gap)
        index = bisect_right(self.holes, low, key=_low) - 1  # the last hole starting at or below `low`
        if index >= 0 and cum <= self.holes[index][1]:
            self._fill(index, low, cum)
            return Verdict(True, late=True)
        if cum <= self.forgotten_top:
            return Verdict(True, late=True, unverified=True)
        return Verdict(False)

    def _open(self, low: int, high: int) -> None:
        self.holes.append((low, high))  # above every other hole: the list stays sorted
        if len(self.holes) > MAX_HOLES:
            self.forgotten_top = max(self.forgotten_top, self.holes.pop(0)[1])

    def _fill(self, index: int, low: int, high: int) -> None:
        hole_low, hole_high = self.holes.pop(index)
        rest = [(a, b) for a, b in ((hole_low, low), (high, hole_high)) if b > a]
        self.holes[index:index] = rest


def _low(hole: tuple[int, int]) -> int:
    return hole[0]
