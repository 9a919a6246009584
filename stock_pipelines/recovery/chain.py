"""The minutes the archive's `cum` chain cannot vouch for: the bar plan asks the broker only for those.

A gap window says trades *may* be missing (a stale heartbeat, a silent feed); the chain says
where they *are*. Between two consecutive archived trades of a symbol (ordered by `cum`) with
`cum_next - qty_next == cum_prev`, no trade is missing, so the archive's bars of that stretch are
whole, whatever a heartbeat said. What stays unproven, per archived symbol:

- each hole of the chain, from the trade before it to the trade after it, both included
  (`gaps.sequence`: the same scan gap_report runs; an overlap of quantities counts as a hole,
  the data is inconsistent there);
- the head, from the open to the first archived trade, when that trade's `cum - qty > 0`
  (also a hole of `gaps.sequence`, against a previous cum of 0);
- the tail, from the last archived trade on: nothing after it can show a missing trade. A last
  trade at or after the closing auction's start is the closing print: no regular trade follows.

A symbol with no archived trade has nothing proven. Windows are whole minutes, each hole widened
with `plan.minute_window` (floor start, past the end's minute), so a bar slot is needed when any
part of its minute is unproven.
"""

from __future__ import annotations

import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.gaps.sequence import sequence_gaps
from stock_pipelines.market import Session
from stock_pipelines.recovery.plan import Window, minute_window, union


def unproven_windows(ticks: pl.DataFrame, session: Session) -> dict[str, list[Window]]:
    """Per symbol of `ticks` (symbol, ts, qty, cum: the day's merged archive), the minute windows
    (Asia/Seoul) the chain does not prove complete. Symbols absent from the result have no
    archived trade: nothing of theirs is proven."""
    if ticks.height == 0:
        return {}
    unproven: dict[str, list[Window]] = {}
    for hole in sequence_gaps(ticks, session.day):
        unproven.setdefault(hole.symbols[0], []).append(minute_window(hole, session.close))
    last = ticks.group_by("symbol").agg(pl.col("ts").sort_by("cum").last())
    for symbol, last_ts in last.iter_rows():
        windows = unproven.setdefault(symbol, [])
        if last_ts < session.closing_auction_start:
            start = min(max(last_ts, session.open), session.close)
            tail = Gap(GapKind.SEQUENCE, "archive", start, session.close, (symbol,),
                       "after the last archived trade")
            windows.append(minute_window(tail, session.close))
    return {symbol: union(windows) for symbol, windows in unproven.items()}

