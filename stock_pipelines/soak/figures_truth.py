"""One soak day measured against the simulator's truth: bars expected and lost, trades expected and
archived, and the fewest broker calls that can return what the tick archive missed.

The broker's page decides the bound. On the day itself only KIS's today endpoint serves the day's
bars, 30 a call; from the next day on, the past-day endpoint serves 120. Which page a recovery
had depends on when it asked, so each missing symbol-minute (the truth's bar that
`tick_minute_bars` lacks or got wrong) is counted at the page of the first fetch that returned it:
today's when that fetch began and ended on the day (`recovered_minute_bars` metadata
`fetch_started`/`fetch_ended`, and the fetched windows' `fetched_at`), else the past day's. The
calls of the two endpoints cannot be shared, so the sum of the two groups' fewest calls is a true
lower bound for the calls made (`calls_lower_bound`). Beside it, for reading: the bound had every
minute been fetched on the day (`calls_same_day_bound`) or after it (`calls_any_day_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from stock_pipelines import lake
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.recovery.plan import lower_bound_calls
from stock_pipelines.sim.truth import day_truth

VALUES = ("open", "high", "low", "close", "volume")
EXAMPLES = 5  # symbol-minutes named in a row's reasons


@dataclass(frozen=True)
class TruthFigures:
    bars_expected: int
    bars_lost: int  # truth bars absent from minute_bars
    bars_wrong: int  # present in minute_bars with other values than the truth's
    bars_extra: int  # minute_bars rows the truth has no bar for
    trades_expected: int
    trades_archived: int  # raw_ticks rows that are truth trades (same symbol and cumulative volume)
    missing_symbol_minutes: int  # truth bars tick_minute_bars lacks or got wrong: only the broker has them
    calls_lower_bound: int  # fewest calls returning them at the pages the recoveries had
    calls_same_day_bound: int  # ... had every one been fetched on the day (today's page)
    calls_any_day_bound: int  # ... had every one been fetched after it (the past day's page)
    problems: list[str] = field(default_factory=list)


def _read(asset: str, day: date, lake_dir: Path) -> pl.DataFrame | None:
    if not lake.partition_exists(asset, day, lake_dir):
        return None
    return lake.read_partition(asset, day, lake_dir)


def _bars(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("symbol").cast(pl.String),
        pl.col("minute").cast(pl.Datetime("us", "UTC")),
        *(pl.col(name).cast(pl.Int64) for name in VALUES),
    )


def compare_bars(
    truth: pl.DataFrame, produced: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(truth bars absent from `produced`, truth bars `produced` has with other values, rows of
    `produced` the truth has no bar for)."""
    truth, produced = _bars(truth), _bars(produced)
    keys = ["symbol", "minute"]
    joined = truth.join(produced, on=keys, how="left", suffix="_got")
    absent = joined.filter(pl.col("volume_got").is_null()).select(keys)
    differs = pl.any_horizontal([pl.col(name) != pl.col(f"{name}_got") for name in VALUES])
    wrong = joined.filter(pl.col("volume_got").is_not_null() & differs).select(keys)
    extra = produced.join(truth, on=keys, how="anti").select(keys)
    return absent, wrong, extra


def _named(frame: pl.DataFrame) -> str:
    shown = [
        f"{symbol} {minute.astimezone(SEOUL):%H:%M}"
        for symbol, minute in frame.sort("symbol", "minute").head(EXAMPLES).iter_rows()
    ]
    more = frame.height - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def missing_windows(frame: pl.DataFrame) -> dict[str, list[tuple]]:
    """Each symbol-minute as a one-minute window (Asia/Seoul), per symbol."""
    windows: dict[str, list[tuple]] = {}
    for symbol, minute in frame.iter_rows():
        start = minute.astimezone(SEOUL)
        windows.setdefault(symbol, []).append((start, start + timedelta(minutes=1)))
    return windows


def calls_any_day_bound(missing: pl.DataFrame, day: date) -> int:
    """The fewest calls returning every missing symbol-minute after `day` (the past day's page)."""
    after = krx_calendar().next_trading_day(day)
    return lower_bound_calls(missing_windows(missing), day, today=after)


def calls_same_day_bound(missing: pl.DataFrame, day: date) -> int:
    """The fewest calls returning every missing symbol-minute on `day` itself (today's page)."""
    return lower_bound_calls(missing_windows(missing), day, today=day)


def fetched_on_the_day(missing: pl.DataFrame, fetched: pl.DataFrame | None,
                       same_day_fetches: set[datetime]) -> pl.DataFrame:
    """The missing symbol-minutes whose first fetch (the earliest `fetched_at` of a fetched window
    holding the minute) is one of `same_day_fetches`."""
    if fetched is None or fetched.height == 0 or missing.height == 0 or not same_day_fetches:
        return missing.clear()
    first = (
        missing.join(fetched.select("symbol", "start", "end", "fetched_at"), on="symbol", how="inner")
        .filter((pl.col("start") <= pl.col("minute")) & (pl.col("minute") < pl.col("end")))
        .group_by("symbol", "minute")
        .agg(pl.col("fetched_at").min())
    )
    starts = [at.astimezone(UTC) for at in same_day_fetches]
    return first.filter(pl.col("fetched_at").is_in(starts)).select("symbol", "minute")


def calls_lower_bound(missing: pl.DataFrame, day: date, fetched: pl.DataFrame | None = None,
                      same_day_fetches: set[datetime] | None = None) -> int:
    """The fewest calls returning every missing symbol-minute at the page of its first fetch."""
    today = fetched_on_the_day(missing, fetched, same_day_fetches or set())
    later = missing.join(today, on=["symbol", "minute"], how="anti")
    return calls_same_day_bound(today, day) + calls_any_day_bound(later, day)


def _archived(truth_trades: pl.DataFrame, ticks: pl.DataFrame | None) -> int:
    if ticks is None or ticks.height == 0:
        return 0
    found = ticks.select(pl.col("symbol").cast(pl.String), pl.col("cum").cast(pl.Int64)).unique()
    return truth_trades.join(found, on=["symbol", "cum"], how="semi").height


def _truth_trades(sim) -> pl.DataFrame:
    codes, cums = [], []
    for code in sim.codes:
        cum = sim.trades(code).cum
        codes.extend([code] * len(cum))
        cums.extend(cum.tolist())
    return pl.DataFrame({"symbol": codes, "cum": cums}, schema={"symbol": pl.String, "cum": pl.Int64})


def measure_day(day: date, exchange: dict, lake_dir: Path,
                same_day_fetches: set[datetime] | None = None) -> TruthFigures:
    """`exchange`: the manifest's {"seed", "symbols", "activity"} of the simulated exchange;
    `same_day_fetches`: when the day's fetches that began and ended on the day began."""
    activity = float(exchange.get("activity", 1.0))
    sim, truth = day_truth(day, int(exchange["seed"]), int(exchange["symbols"]), activity)
    problems: list[str] = []
    final = _read("minute_bars", day, lake_dir)
    if final is None:
        problems.append("minute_bars is not materialized")
        final = truth.clear()
    absent, wrong, extra = compare_bars(truth, final)
    if absent.height:
        problems.append(f"{absent.height} bars lost: {_named(absent)}")
    if wrong.height:
        problems.append(f"{wrong.height} bars differ from the truth: {_named(wrong)}")
    if extra.height:
        problems.append(f"{extra.height} bars the truth does not have: {_named(extra)}")
    ticks_bars = _read("tick_minute_bars", day, lake_dir)
    tick_absent, tick_wrong, _ = compare_bars(truth, ticks_bars if ticks_bars is not None else truth.clear())
    missing = pl.concat([tick_absent, tick_wrong])
    ticks = _read("raw_ticks", day, lake_dir)
    return TruthFigures(
        bars_expected=truth.height,
        bars_lost=absent.height,
        bars_wrong=wrong.height,
        bars_extra=extra.height,
        trades_expected=len(sim),
        trades_archived=_archived(_truth_trades(sim), ticks),
        missing_symbol_minutes=missing.height,
        calls_lower_bound=calls_lower_bound(
            missing, day, _read("recovery_fetched_windows", day, lake_dir), same_day_fetches
        ),
        calls_same_day_bound=calls_same_day_bound(missing, day),
        calls_any_day_bound=calls_any_day_bound(missing, day),
        problems=problems,
    )
