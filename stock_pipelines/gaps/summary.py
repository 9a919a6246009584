"""Gaps as a table, and how much trading time each collector lost to each kind of gap."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import polars as pl

from stock_pipelines.gaps.model import Gap

SEOUL_TZ = "Asia/Seoul"


def gaps_frame(gaps: Iterable[Gap]) -> pl.DataFrame:
    """One row a gap: kind, collector, start, end (Asia/Seoul), minutes, symbols (list), reason."""
    gaps = list(gaps)
    return pl.DataFrame(
        {
            "kind": [g.kind.value for g in gaps],
            "collector": [g.collector for g in gaps],
            "start": [g.start for g in gaps],
            "end": [g.end for g in gaps],
            "minutes": [g.minutes for g in gaps],
            "symbols": [list(g.symbols) for g in gaps],
            "reason": [g.reason for g in gaps],
        },
        schema={
            "kind": pl.String(), "collector": pl.String(),
            "start": pl.Datetime("us", SEOUL_TZ), "end": pl.Datetime("us", SEOUL_TZ),
            "minutes": pl.Float64(), "symbols": pl.List(pl.String()), "reason": pl.String(),
        },
    )


def minutes_lost(gaps: Iterable[Gap]) -> pl.DataFrame:
    """Per (collector, kind): gaps, minutes (the union of their windows: overlapping gaps count
    once) and symbol_minutes (each gap's minutes x its symbol count, the work to recover).

    Sorted by collector, kind.
    """
    grouped: dict[tuple[str, str], list[Gap]] = {}
    for gap in gaps:
        grouped.setdefault((gap.collector, gap.kind.value), []).append(gap)
    rows = []
    for (collector, kind), members in sorted(grouped.items()):
        rows.append(
            {
                "collector": collector,
                "kind": kind,
                "gaps": len(members),
                "minutes": _union(members) / timedelta(minutes=1),
                "symbol_minutes": sum(g.minutes * max(1, len(g.symbols)) for g in members),
            }
        )
    return pl.DataFrame(
        rows,
        schema={"collector": pl.String(), "kind": pl.String(), "gaps": pl.Int64(), "minutes": pl.Float64(),
                "symbol_minutes": pl.Float64()},
    )


def _union(gaps: list[Gap]) -> timedelta:
    total, current_start, current_end = timedelta(), None, None
    for gap in sorted(gaps, key=lambda g: (g.start, g.end)):
        if current_end is None or gap.start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = gap.start, gap.end
        else:
            current_end = max(current_end, gap.end)
    if current_end is not None:
        total += current_end - current_start
    return total
