"""The recovery plan: every gap turned into the fewest broker calls, most active symbols first.

A broker returns a page of minute bars per call (KIS: 30 a call for today, 120 for past days),
newest first from a cursor. So the cost of a window is ceil(bar slots / page size), and two
windows of one symbol are worth fetching as one when the span between them costs no extra
call. The plan is ordered by the symbols' traded volume, so a run cut short (breaker open,
budget spent) has recovered what matters most.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from stock_pipelines.gaps.model import Gap
from stock_pipelines.market import SEOUL, KrxCalendar, krx_calendar

ONE_MINUTE = timedelta(minutes=1)
TODAY_PAGE = 30
PAST_PAGE = 120

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class FetchWindow:
    symbol: str
    start: datetime  # Asia/Seoul, on a minute boundary
    end: datetime
    slots: int  # expected bar slots of the session inside [start, end)
    calls: int  # broker calls this window costs at most: ceil(slots / page)
    rank: int  # 0 = the most active symbol


def page_size(day: date, today: date) -> int:
    return TODAY_PAGE if day == today else PAST_PAGE


def minute_window(gap: Gap, close: datetime | None = None) -> Window:
    """The minutes whose bars a gap touches: [floor(start), ceil(end)), never empty.

    A sequence gap (previous trade, this trade] may be zero-length; the trades it misses are
    in the minutes from the previous trade's minute to this trade's minute, both included.
    A gap that reaches the session's `close` also lost the closing print, whose bar is stamped
    with the close itself (15:30): trading time is [open, close), so the window must reach past it.
    """
    start = floor_minute(gap.start)
    end = floor_minute(gap.end)
    if gap.end > end or gap.kind == "sequence" or end == start:
        end += ONE_MINUTE
    if close is not None and gap.end >= close:
        end = max(end, close + ONE_MINUTE)
    return start, end


def symbol_windows(
    gaps: Iterable[Gap],
    covered: Mapping[str, Sequence[Window]] | None = None,
    close: datetime | None = None,
    fetched: Mapping[str, Sequence[Window]] | None = None,
    unproven: Mapping[str, Sequence[Window]] | None = None,
) -> dict[str, list[Window]]:
    """Per symbol, the union of its gaps' minute windows, less what `covered` already holds, less
    what the broker already answered (`fetched`) and, with `unproven`, only inside it.

    `covered` maps a symbol to windows another archive recorded (tier 1, free of API cost). It
    never excuses a sequence gap: those are found on the merged archives, so no archive has them.
    `fetched` maps a symbol to whole-minute windows an earlier run fetched from the broker after
    they had closed (`recovery.reuse`): their bars are final and are reused, whatever the gap.
    `unproven` maps a symbol to the windows its archived `cum` chain does not prove complete
    (`recovery.chain`); outside them the archive's bars are whole. A symbol it does not name has
    no archived trade and keeps its windows.
    """
    coverable: dict[str, list[Window]] = defaultdict(list)
    sequence: dict[str, list[Window]] = defaultdict(list)
    for gap in gaps:
        window = minute_window(gap, close)
        for symbol in gap.symbols:
            (sequence if gap.kind == "sequence" else coverable)[symbol].append(window)
    result: dict[str, list[Window]] = {}
    for symbol in sorted(set(coverable) | set(sequence)):
        windows = union(coverable.get(symbol, []))
        for hole in (covered or {}).get(symbol, ()):
            # only whole minutes the other archive saw from start to end count as covered
            windows = subtract(windows, (ceil_minute(hole[0]), floor_minute(hole[1])))
        windows = union(windows + sequence.get(symbol, []))
        for done in (fetched or {}).get(symbol, ()):
            windows = subtract(windows, done)
        if unproven is not None and symbol in unproven:
            windows = intersect(windows, union(list(unproven[symbol])))
        if windows:
            result[symbol] = windows
    return result


def build_plan(
    gaps: Iterable[Gap],
    day: date,
    today: date,
    activity: Mapping[str, int],
    covered: Mapping[str, Sequence[Window]] | None = None,
    calendar: KrxCalendar | None = None,
    fetched: Mapping[str, Sequence[Window]] | None = None,
    unproven: Mapping[str, Sequence[Window]] | None = None,
) -> list[FetchWindow]:
    session = (calendar or krx_calendar()).session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day: nothing to recover")
    slots_all = session.minute_bar_starts()
    page = page_size(day, today)
    ranking = sorted(activity, key=lambda s: (-activity[s], s))
    rank_of = {symbol: i for i, symbol in enumerate(ranking)}
    plan: list[FetchWindow] = []
    for symbol, windows in symbol_windows(gaps, covered, session.close, fetched, unproven).items():
        for start, end, slots in _pages(union(list(windows)), slots_all, page):
            plan.append(
                FetchWindow(symbol, start, end, slots, math.ceil(slots / page), rank_of.get(symbol, len(rank_of)))
            )
    plan.sort(key=lambda w: (w.rank, w.symbol, w.start))
    return plan


def lower_bound_calls(
    missing: Mapping[str, Sequence[Window]], day: date, today: date, calendar: KrxCalendar | None = None
) -> int:
    """The fewest broker calls that can return every missing symbol-minute, whatever the plan.

    `missing` maps a symbol to its missing minute windows (overlaps allowed: they are merged).
    One call returns at most a page of consecutive bar slots, so per symbol the bound is the
    fewest page-long runs of slots that cover every missing slot: starting a run at the first
    slot not yet covered is optimal.
    """
    session = (calendar or krx_calendar()).session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day: nothing to recover")
    slots_all = session.minute_bar_starts()
    page = page_size(day, today)
    return sum(
        len(_page_runs([i for i, _ in _wanted_slots(union(list(windows)), slots_all)], page))
        for windows in missing.values()
    )


def missing_slots(missing: Mapping[str, Sequence[Window]], day: date, calendar: KrxCalendar | None = None) -> int:
    """Symbol-minutes (bar slots of the session) inside `missing`, overlaps counted once."""
    session = (calendar or krx_calendar()).session(day)
    if session is None:
        raise ValueError(f"{day} is not a KRX trading day: nothing to recover")
    slots_all = session.minute_bar_starts()
    return sum(_slots(slots_all, s, e) for windows in missing.values() for s, e in union(list(windows)))


def clipped_to(windows: Iterable[FetchWindow], keep: Mapping[str, Sequence[Window]]) -> list[FetchWindow]:
    """The parts of fetched windows that lie inside `keep` (per symbol): a coalesced fetch also
    returns the minutes between two gaps, whose bars the archive already has."""
    pieces: list[FetchWindow] = []
    for window in windows:
        for start, end in union(list(keep.get(window.symbol, ()))):
            start, end = max(start, window.start), min(end, window.end)
            if start < end:
                pieces.append(FetchWindow(window.symbol, start, end, 0, 0, window.rank))
    return pieces


def _wanted_slots(windows: list[Window], slots_all: list[datetime]) -> list[tuple[int, Window]]:
    """Each bar slot inside one of `windows` (sorted, disjoint), with the window holding it."""
    return [(i, window) for window in windows for i, slot in enumerate(slots_all) if window[0] <= slot < window[1]]


def _page_runs(wanted: list[int], page: int) -> list[tuple[int, int]]:
    """The fewest page-long runs of slot indexes covering `wanted` (sorted), as (first position,
    last position) in `wanted`: a run starts at the first slot not yet covered, which is optimal."""
    runs = []
    k = 0
    while k < len(wanted):
        j = k
        while j + 1 < len(wanted) and wanted[j + 1] < wanted[k] + page:
            j += 1
        runs.append((k, j))
        k = j + 1
    return runs


def _pages(windows: list[Window], slots_all: list[datetime], page: int) -> list[tuple[datetime, datetime, int]]:
    """The fewest fetches of at most a page each that return every bar slot of one symbol's
    `windows` (sorted, disjoint): the page runs of `lower_bound_calls`, so a plan costs exactly
    that bound of its windows. A broker pages back from any minute, so a fetch need not end where
    a gap does; it keeps a window's own edges where it holds the whole window (the minutes around
    the closing auction have no slots), and the minutes between two gaps it spans are dropped
    afterwards (`clipped_to`)."""
    owned = _wanted_slots(windows, slots_all)
    fetches = []
    for k, j in _page_runs([i for i, _ in owned], page):
        first_window = owned[k][1]
        last, last_window = owned[j]
        starts_window = k == 0 or owned[k - 1][1] != first_window
        ends_window = j + 1 == len(owned) or owned[j + 1][1] != last_window
        end = last_window[1] if ends_window else slots_all[last] + ONE_MINUTE
        if not starts_window and fetches:
            # the previous page stopped inside this window: one fetch pages on through it, for the
            # same calls (full pages back from its end)
            start = fetches.pop()[0]
        else:
            start = first_window[0]
        fetches.append((start, end, _slots(slots_all, start, end)))
    return fetches


def _slots(slots_all: list[datetime], start: datetime, end: datetime) -> int:
    return sum(1 for slot in slots_all if start <= slot < end)


def union(windows: list[Window]) -> list[Window]:
    """Overlapping or touching windows merged, sorted by start."""
    result: list[Window] = []
    for start, end in sorted(windows):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result


def intersect(windows: list[Window], keep: list[Window]) -> list[Window]:
    """The parts of `windows` inside `keep`, both sorted and disjoint (as `union` returns them)."""
    result: list[Window] = []
    for start, end in windows:
        for keep_start, keep_end in keep:
            piece = (max(start, keep_start), min(end, keep_end))
            if piece[0] < piece[1]:
                result.append(piece)
    return result


def subtract(windows: list[Window], hole: Window) -> list[Window]:
    """The parts of `windows` outside `hole`, in order."""
    result: list[Window] = []
    for start, end in windows:
        if hole[1] <= start or end <= hole[0]:
            result.append((start, end))
            continue
        if start < hole[0]:
            result.append((start, hole[0]))
        if hole[1] < end:
            result.append((hole[1], end))
    return result


def floor_minute(instant: datetime) -> datetime:
    return instant.astimezone(SEOUL).replace(second=0, microsecond=0)


def ceil_minute(instant: datetime) -> datetime:
    floored = floor_minute(instant)
    return floored if floored == instant else floored + ONE_MINUTE
