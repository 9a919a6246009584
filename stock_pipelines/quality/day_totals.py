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
from datetime import date, datetime, timedelta

import polars as pl

from stock_pipelines.brokers.model import BrokerAuthError, BrokerError, DayVolumeSource, MinuteBarSource
from stock_pipelines.market import SEOUL, Session

TOTALS_SCHEMA = {"symbol": pl.String(), "broker_volume": pl.Int64()}
# The day total is final once the closing print is reported; a few minutes' margin for the broker.
SETTLED_AFTER_CLOSE = timedelta(minutes=5)


@dataclass
class DayTotals:
    checked: bool
    note: str  # why not checked, or what was
    calls: int = 0
    totals: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TOTALS_SCHEMA))  # 0: none traded
    failed: list[str] = field(default_factory=list)


def choose_symbols(volume: pl.DataFrame, at_risk: set[str], budget: int, day: date) -> list[str]:
    """At most `budget` symbols: those at risk by traded volume, then the others in a rotation
    (offset by the day) through the universe ordered by traded volume."""
    if budget <= 0:
        return []
    activity = volume.select("symbol", traded=pl.max_horizontal("last_cum", "bar_volume"))
    known = set(activity["symbol"].to_list())
    ranked = activity.sort(["traded", "symbol"], descending=[True, False])["symbol"].to_list()
    risky = [s for s in ranked if s in at_risk] + sorted(at_risk - known)
    chosen = risky[:budget]
    rest = [s for s in ranked if s not in at_risk]
    room = budget - len(chosen)
    if rest and room > 0:
        start = (day.toordinal() * room) % len(rest)
        chosen += (rest[start:] + rest[:start])[:room]
    return chosen


def at_risk_symbols(gaps: pl.DataFrame, recovered: pl.DataFrame, volume: pl.DataFrame) -> set[str]:
    symbols: set[str] = set()
    if gaps.height:
        symbols.update(gaps["symbols"].explode().drop_nulls().to_list())
    if recovered.height:
        symbols.update(recovered["symbol"].unique().to_list())
    symbols.update(volume.filter(pl.col("ticks_missing") != 0)["symbol"].to_list())
    return symbols


def fetch_day_totals(source: DayVolumeSource, day: date, symbols: list[str]) -> DayTotals:
    """One call a symbol; a failed symbol is listed, not fatal; refused credentials stop."""
    rows: list[tuple[str, int]] = []
    failed: list[str] = []
    calls = 0
    for symbol in symbols:
        try:
            reported = source.day_volume(symbol, day)
        except BrokerAuthError as error:
            failed.append(f"{symbol}: {type(error).__name__}: {error}")
            break
        except (BrokerError, TimeoutError, OSError) as error:
            failed.append(f"{symbol}: {type(error).__name__}: {error}")
            continue
        finally:
            calls += 1
        rows.append((symbol, reported or 0))
    totals = pl.DataFrame(rows, schema=TOTALS_SCHEMA, orient="row")
    note = f"{totals.height} symbols' day volume from {source.name}" + (
        f", {len(failed)} failed" if failed else ""
    )
    return DayTotals(True, note, calls, totals, failed)


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
