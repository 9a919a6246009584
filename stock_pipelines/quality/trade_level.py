"""The "Trade level" part of the day's report: whether the day is complete at trade level, the
symbols left at bar level (their trades are not all present, or cannot be proven so) with their
share, and the overall share (`quality.trade_completeness`)."""

from __future__ import annotations

from stock_pipelines.quality.trade_completeness import TradeCompleteness

HEADER = ["symbol", "share", "why", "missing ranges", "missing volume", "day volume", "day volume from"]


def _percent(share: float | None) -> str:
    return "unknown" if share is None else f"{share * 100:.4f}%"


def verdict(result: TradeCompleteness) -> str:
    """One line: complete at trade level, or what keeps the day at bar level."""
    overall = _percent(result.overall_share)
    if result.day_complete:
        return f"complete at trade level: {overall} of the day's volume present"
    reasons = []
    if result.below.height:
        reasons.append(f"{result.below.height} symbols below {_percent(result.warn_share)}")
    if result.unproven:
        reasons.append(f"{len(result.unproven)} without a known day volume")
    if result.with_problems.height:
        reasons.append(f"{result.with_problems.height} with a bad cum chain")
    share = result.overall_share
    if share is not None and share < result.warn_share:
        reasons.append(f"the day below {_percent(result.warn_share)}")
    return f"not complete at trade level ({overall} of the day's volume present): " + ", ".join(
        reasons or ["no trades"]
    )


def bar_level_symbols(result: TradeCompleteness) -> dict[str, float | None]:
    """Symbol -> share of its day volume present (None: unknown), for every symbol at bar level."""
    return {symbol: share for symbol, share, _ in result.bar_level.rows()}


def summary(result: TradeCompleteness) -> dict:
    """What summary.json keeps of the day's trade level."""
    return {**result.totals(), "bar_level_symbols": bar_level_symbols(result), "verdict": verdict(result)}


def rows(result: TradeCompleteness) -> list[list[object]]:
    """One row per symbol left at bar level, the least complete first (unknown shares last)."""
    reasons = dict((symbol, why) for symbol, _, why in result.bar_level.rows())
    symbols = result.symbols.filter(result.symbols["symbol"].is_in(list(reasons))).sort(
        "share", "symbol", nulls_last=True
    )
    return [
        [
            r["symbol"],
            _percent(r["share"]),
            reasons[r["symbol"]],
            r["missing_ranges"],
            r["missing_volume"],
            r["day_volume"],
            r["day_volume_from"] or "-",
        ]
        for r in symbols.iter_rows(named=True)
    ]


def note(result: TradeCompleteness) -> str:
    totals = result.totals()
    return (
        f"Trade level: {verdict(result)}; "
        f"{totals['symbols_complete']} of {totals['symbols']} symbols complete, "
        f"{len(bar_level_symbols(result))} left at bar level; {totals['trades_present']} trades present, "
        f"{totals['missing_volume']} shares missing in {totals['missing_ranges']} ranges"
    )
