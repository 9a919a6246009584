"""Silence gaps: the collector beats, but its whole universe printed no trade for N minutes.

A zombie: connected, heartbeating, receiving nothing. Only continuous trading counts ([open,
closing auction start)): the pre-open and the closing auction have no continuous prints, so a
quiet 15:20-15:30 is normal. Only up-time counts too: a stretch with no heartbeat is downtime,
reported once, by `downtime_gaps`.

The archive is read before the gaps are judged (raw_ticks first, then gap_report), so its tail
may lag the heartbeats: on an accelerated clock a few wall seconds between the two are tens of
exchange minutes. A collector's heartbeat says which trade it had archived last (`last_trade_at`,
flushed before the beat). When that trade is later than the start of the quiet stretch after the
last trade read, in the collector's current up-time, the stretch is the archive read too early,
not a quiet feed: only the part after that trade can be a silence. A feed that really missed
trades there shows a hole in the `cum` chain once the archive is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind, clipped
from stock_pipelines.heartbeat.model import DEFAULT_INTERVAL_S, UpInterval, from_us, merge_intervals, to_us
from stock_pipelines.market import SEOUL, KrxCalendar, krx_calendar

DEFAULT_SILENCE = timedelta(minutes=5)


def trade_times_us(trades: pl.DataFrame | pl.LazyFrame | pl.Series, column: str = "ts") -> np.ndarray:
    """Epoch-microsecond int64 array of the trade times (a tz-aware Datetime column), unsorted."""
    if isinstance(trades, pl.LazyFrame):
        trades = trades.select(column).collect()
    series = trades if isinstance(trades, pl.Series) else trades.get_column(column)
    if not isinstance(series.dtype, pl.Datetime):
        raise TypeError(f"trade times must be a Datetime column, not {series.dtype}")
    if series.dtype.time_zone is None:
        raise ValueError("trade times must be timezone-aware (raw_ticks stores Datetime('us', 'UTC'))")
    return series.drop_nulls().dt.epoch("us").to_numpy()


def quiet_stretches(times: np.ndarray, a: int, b: int, min_len: int) -> list[tuple[int, int]]:
    """Maximal stretches of at least `min_len` with no time in `times`, inside [a, b].

    The bounds count as points: a stretch may run from `a` to the first time, or from the last
    time to `b`. No sort: times are counted into buckets of min_len / 5, every stretch that long
    covers at least 4 whole empty buckets, and only the buckets next to each such run are
    looked at closely to find the exact last time before and first time after it.
    """
    if b - a < min_len:
        return []
    inside = times[(times >= a) & (times < b)]
    if inside.size == 0:
        return [(a, b)]
    bucket = max(1, min_len // 5)
    buckets = (b - a + bucket - 1) // bucket
    empty = np.bincount((inside - a) // bucket, minlength=buckets) == 0
    edges = np.diff(np.concatenate(([0], empty.astype(np.int8), [0])))
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    stretches = []
    for first, end in zip(run_starts, run_ends, strict=True):
        if end - first < 4:
            continue
        before = inside[(inside >= a + (first - 1) * bucket) & (inside < a + first * bucket)] if first else None
        after = inside[(inside >= a + end * bucket) & (inside < a + (end + 1) * bucket)] if end < buckets else None
        lo = a if before is None else int(before.max())
        hi = b if after is None else int(after.min())
        if hi - lo >= min_len:
            stretches.append((lo, hi))
    return stretches


def silence_gaps(
    trades: pl.DataFrame | pl.LazyFrame | pl.Series,
    up_intervals: Iterable[UpInterval],
    day: date,
    *,
    collector: str,
    minutes: float = DEFAULT_SILENCE / timedelta(minutes=1),
    bridge: timedelta = timedelta(seconds=3 * DEFAULT_INTERVAL_S),
    symbols: Iterable[str] = (),
    now: datetime | None = None,
    calendar: KrxCalendar | None = None,
    reported_last_trade: datetime | None = None,
) -> list[Gap]:
    """Stretches of at least `minutes` without a trade, inside up-time and continuous trading.

    `trades` is the collector's own trades of `day` (a frame with a ``ts`` column or the column
    itself). Up-intervals separated by holes of at most `bridge` (too short to be downtime) are
    treated as one, so a hiccup does not split a silence in two. `reported_last_trade`: the
    newest trade the collector's latest heartbeat says it archived; a quiet stretch of its last
    up-time with no trade of `trades` after it starts no earlier than that.
    """
    if minutes <= 0:
        raise ValueError(f"a silence must last a positive number of minutes, not {minutes}")
    calendar = calendar or krx_calendar()
    session = calendar.session(day)
    if session is None:
        return []
    continuous_start, continuous_end = session.open, session.closing_auction_start
    if now is not None:
        continuous_end = min(continuous_end, now)
    if continuous_end <= continuous_start:
        return []

    times = trade_times_us(trades)
    silence_us = int(timedelta(minutes=minutes) / timedelta(microseconds=1))
    last_read_us = int(times.max()) if times.size else None
    reported_us = None if reported_last_trade is None else to_us(reported_last_trade)
    pieces = _bridged(up_intervals, bridge)
    symbols = tuple(symbols)
    gaps: list[Gap] = []
    for index, (piece_start, piece_end) in enumerate(pieces):
        a = to_us(max(piece_start, continuous_start))
        b = to_us(min(piece_end, continuous_end))
        if b <= a:
            continue
        for start_us, stop_us in quiet_stretches(times, a, b, silence_us):
            read_too_early = (
                reported_us is not None and reported_us > start_us and index == len(pieces) - 1
                and (last_read_us is None or start_us >= last_read_us)
            )
            if read_too_early:
                start_us = reported_us  # the trades up to here reached the archive after it was read
                if stop_us - start_us < silence_us:
                    continue
            start, end = from_us(start_us), from_us(stop_us)
            reason = (
                f"heartbeats but no trade in {len(symbols) or 'its'} symbols for "
                f"{(end - start) / timedelta(minutes=1):.1f} minutes of continuous trading "
                f"({start.astimezone(SEOUL):%H:%M:%S}-{end.astimezone(SEOUL):%H:%M:%S} Asia/Seoul)"
            )
            gaps.extend(clipped(GapKind.SILENCE, collector, start, end, symbols, reason, calendar))
    return gaps


def _bridged(up_intervals: Iterable[UpInterval], bridge: timedelta) -> list[tuple[datetime, datetime]]:
    pieces: list[tuple[datetime, datetime]] = []
    for start, end in merge_intervals(up_intervals):
        if pieces and start - pieces[-1][1] <= bridge:
            pieces[-1] = (pieces[-1][0], max(pieces[-1][1], end))
        else:
            pieces.append((start.astimezone(UTC), end.astimezone(UTC)))
    return pieces
