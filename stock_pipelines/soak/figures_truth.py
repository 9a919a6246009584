"""One soak day measured against the simulator's truth: bars expected and lost, trades expected and
archived, and two bounds on the broker calls that can return what the tick archive missed.

The broker's page decides the bounds. On the day itself only KIS's today endpoint serves the day's
bars, 30 a call; from the next day on, the past-day endpoint serves 120. So:
- `calls_lower_bound` counts the missing symbol-minutes at the past-day page: no recovery, whenever
  it runs, needs fewer calls. A run that spends fewer has miscounted.
- `calls_same_day_bound` counts them at today's page: the fewest calls of a pipeline that recovers
  each day on that day, as the sensor's recoveries (minutes after a loss) and the end-of-day run
  (at the close) are built to. The soak is judged against this one.

The truth is rebuilt from the exchange's parameters (`sim.truth.day_truth`), never read from the
exchange or from the pipeline's own plan, so a run whose exchange is gone can still be judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
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
    calls_lower_bound: int  # fewest broker calls that can return those symbol-minutes, on any day
    calls_same_day_bound: int  # the same on the day itself, at today's smaller page
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


def calls_lower_bound(missing: pl.DataFrame, day: date) -> int:
    """The fewest calls returning every missing symbol-minute, at a past day's page (the largest
    page, so the bound holds whenever the recovery ran)."""
    after = krx_calendar().next_trading_day(day)
    return lower_bound_calls(missing_windows(missing), day, today=after)


def calls_same_day_bound(missing: pl.DataFrame, day: date) -> int:
    """The fewest calls returning every missing symbol-minute on `day` itself (today's page)."""
    return lower_bound_calls(missing_windows(missing), day, today=day)


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


def measure_day(day: date, exchange: dict, lake_dir: Path) -> TruthFigures:
    """`exchange`: the manifest's {"seed", "symbols", "activity"} of the simulated exchange."""
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
        calls_lower_bound=calls_lower_bound(missing, day),
        calls_same_day_bound=calls_same_day_bound(missing, day),
        problems=problems,
    )
