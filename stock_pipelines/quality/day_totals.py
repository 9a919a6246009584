"""The broker's reported day volume per symbol, the cross-check of the archive's last cumulative
volume: within a call budget, the symbols at risk first (those of a gap, a recovered window or a
tick shortfall), then the rest of the day's universe in a rotation that reaches every symbol
over days.

Why a cross-check: the last `cum` archived is the exchange's day volume only if the archive saw
the day's last trade. Trades lost after a symbol's last archived trade leave no later `cum` to
reveal them; the broker's day total does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from stock_pipelines.brokers.model import BrokerAuthError, BrokerError, DayVolumeSource, MinuteBarSource
from stock_pipelines.market import SEOUL, SUPPORTED_FIRST_DAY, Session, krx_calendar

TOTALS_SCHEMA = {"symbol": pl.String(), "broker_volume": pl.Int64()}
# The day total is final once the closing print is reported; a few minutes' margin for the broker.
SETTLED_AFTER_CLOSE = timedelta(minutes=5)
# At most this share of the budget goes to the symbols at risk: on a day with a collector
# outage they are its whole universe, and the rotation must still move on.
AT_RISK_SHARE = 0.75


@dataclass
class DayTotals:
    checked: bool  # the broker answered for at least one symbol
    note: str  # what was checked, or why not
    calls: int = 0  # symbols asked (each one request, plus the client's retries)
    totals: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TOTALS_SCHEMA))
    failed: list[str] = field(default_factory=list)  # symbols not answered, and why
    no_row: list[str] = field(default_factory=list)  # the broker had no row for the day: not judged


def rotation_width(budget: int) -> int:
    """Symbols the rotation gets every day, whatever is at risk."""
    return max(1, budget - int(budget * AT_RISK_SHARE)) if budget > 0 else 0


def choose_symbols(volume: pl.DataFrame, at_risk: set[str], budget: int, day: date) -> list[str]:
    """At most `budget` symbols: those at risk first (those with no trade and no bar at all, then
    by traded volume), at most AT_RISK_SHARE of the budget while others remain; the rest of the
    budget walks the other symbols in code order, starting where the day's trading-day index
    puts it, so that every symbol is asked within ceil(symbols / rotation_width(budget)) trading
    days."""
    if budget <= 0:
        return []
    activity = volume.select("symbol", traded=pl.max_horizontal("last_cum", "bar_volume"))
    known = set(activity["symbol"].to_list())
    ranked = activity.sort(["traded", "symbol"], descending=[True, False])["symbol"].to_list()
    risky = sorted(at_risk - known) + [s for s in ranked if s in at_risk]
    rest = sorted(known - at_risk)
    width = min(rotation_width(budget), len(rest))
    chosen = risky[: budget - width]
    room = budget - len(chosen)
    if rest and room > 0:
        start = (trading_day_index(day) * width) % len(rest)
        chosen += (rest[start:] + rest[:start])[:room]
    return chosen


def trading_day_index(day: date) -> int:
    """The number of KRX sessions from the calendar's first supported day up to `day`."""
    return len(krx_calendar().trading_days(SUPPORTED_FIRST_DAY, day))


def at_risk_symbols(gaps: pl.DataFrame, recovered: pl.DataFrame, volume: pl.DataFrame) -> set[str]:
    symbols: set[str] = set()
    if gaps.height:
        symbols.update(gaps["symbols"].explode().drop_nulls().to_list())
    if recovered.height:
        symbols.update(recovered["symbol"].unique().to_list())
    symbols.update(volume.filter(pl.col("ticks_missing") != 0)["symbol"].to_list())
    return symbols


def fetch_day_totals(source: DayVolumeSource, day: date, symbols: list[str]) -> DayTotals:
    """One call a symbol; a failed symbol is listed, not fatal; refused credentials stop (the
    symbols not asked are listed too)."""
    rows: list[tuple[str, int]] = []
    failed: list[str] = []
    no_row: list[str] = []
    calls = 0
    for index, symbol in enumerate(symbols):
        calls += 1
        try:
            reported = source.day_volume(symbol, day)
        except BrokerAuthError as error:
            failed.append(f"{symbol}: {type(error).__name__}: {error}")
            failed += [f"{other}: not asked (credentials refused)" for other in symbols[index + 1 :]]
            break
        except (BrokerError, TimeoutError, OSError) as error:
            failed.append(f"{symbol}: {type(error).__name__}: {error}")
            continue
        if reported is None:
            no_row.append(symbol)
        else:
            rows.append((symbol, reported))
    totals = pl.DataFrame(rows, schema=TOTALS_SCHEMA, orient="row")
    note = f"{totals.height} of {len(symbols)} symbols' day volume from {source.name}"
    if no_row:
        note += f", {len(no_row)} without a row for the day (not judged)"
    if failed:
        note += f", {len(failed)} not answered"
    return DayTotals(totals.height > 0, note, calls, totals, failed, no_row)


def day_totals_check(
    session: Session,
    volume: pl.DataFrame,
    at_risk: set[str],
    source: MinuteBarSource | None,
    budget: int,
    now: datetime,
    unavailable: str = "",
) -> DayTotals:
    """The broker's day totals for the day's chosen symbols, or why none were fetched."""
    if budget <= 0:
        return DayTotals(False, "off (STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS=0)")
    if source is None:
        return DayTotals(False, f"broker unavailable: {unavailable}")
    if not isinstance(source, DayVolumeSource):
        return DayTotals(False, f"{source.name} does not report day volumes (KIS FHKST03010100 does)")
    settled = session.close + SETTLED_AFTER_CLOSE
    if now.astimezone(SEOUL) < settled:
        return DayTotals(False, f"the day's volume is final from {settled:%Y-%m-%d %H:%M}; checked then")
    return fetch_day_totals(source, session.day, choose_symbols(volume, at_risk, budget, session.day))


def before_gaps_at_risk(
    volume: pl.DataFrame, ticks: pl.DataFrame, session: Session, universe: list[str]
) -> set[str]:
    """The symbols at risk before the day's gaps are known (the day totals feed the gap report):
    a tick shortfall, no archived trade in the closing auction (where a lost tail shows), or no
    trade at all (a symbol of `universe` absent from `volume`)."""
    at_risk = at_risk_symbols(pl.DataFrame(), pl.DataFrame(), volume)
    traded = set(volume["symbol"].to_list())
    at_risk |= set(universe) - traded
    if ticks.height:
        last = ticks.group_by("symbol").agg(pl.col("ts").max())
        auction = session.closing_auction_start.astimezone(UTC)
        at_risk |= set(last.filter(pl.col("ts") < auction)["symbol"].to_list())
    return at_risk
