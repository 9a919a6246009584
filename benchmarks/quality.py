"""Benchmark: the RFC-008 quality measures for a full-market day, against building its bars.

    .venv/bin/python benchmarks/quality.py [--ticks 10000000] [--symbols 2700] [--repeat 3]

Generates one collector's raw_ticks-shaped day (symbol, ts, price, qty, cum, collector; sorted by
symbol then time) with ~1,000 dropped trades (cumulative-volume jumps) and a 45-minute downtime
gap for a quarter of the universe (their trades in it removed: real holes), then times (best of --repeat):
  bars         archive.bars.minute_bars from the ticks (the baseline: what tick_minute_bars pays)
  coverage     quality.coverage.compute_coverage (expected / present symbol-minutes, holes, by
               collector); three checks and the report each compute it once
  consistency  quality.consistency.day_volume + invariant_violations
Ratios are against `bars` in the same run (no absolute goal: the checks should cost no more
than building the bars). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY = date(2026, 3, 5)


def generate(ticks: int, symbols: int, seed: int = 1):
    import numpy as np
    import polars as pl

    from stock_pipelines.market import krx_calendar

    session = krx_calendar().session(DAY)
    rng = np.random.default_rng(seed)
    index = np.sort(rng.integers(0, symbols, ticks))
    open_us = int(session.open.timestamp() * 1e6)
    span = int((session.closing_auction_start - session.open).total_seconds() * 1e6)
    ts = open_us + rng.integers(0, span, ticks)
    order = np.lexsort((ts, index))
    index, ts = index[order], ts[order]
    codes = np.array([f"{100000 + i * 37:06d}" for i in range(symbols)])
    frame = pl.DataFrame(
        {
            "symbol": codes[index],
            "ts": ts,
            "price": rng.integers(1000, 2000, ticks),
            "qty": rng.integers(1, 100, ticks),
            "collector": "kis-1",
        }
    ).with_columns(
        pl.from_epoch("ts", "us").dt.replace_time_zone("UTC"), cum=pl.col("qty").cum_sum().over("symbol")
    )
    dropped = rng.choice(ticks, 1000, replace=False)
    frame = frame.filter(~pl.int_range(pl.len()).is_in(dropped))
    return session, frame, codes


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=2700)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import polars as pl

    from stock_pipelines.archive.bars import minute_bars
    from stock_pipelines.brokers.model import BAR_SCHEMA
    from stock_pipelines.gaps.model import Gap, GapKind
    from stock_pipelines.gaps.summary import gaps_frame
    from stock_pipelines.quality.consistency import day_volume, invariant_violations
    from stock_pipelines.quality.coverage import compute_coverage

    session, ticks, codes = generate(args.ticks, args.symbols)
    down = session.open.replace(hour=11)
    gaps = gaps_frame(
        [
            Gap(
                GapKind.DOWNTIME,
                "kis-1",
                down,
                down.replace(minute=45),
                tuple(codes[: args.symbols // 4]),
                "down",
            )
        ]
    )
    lost = (
        pl.col("symbol").is_in(list(codes[: args.symbols // 4]))
        & (pl.col("ts") >= down.astimezone(UTC))  # polars compares within one time zone
        & (pl.col("ts") < down.replace(minute=45).astimezone(UTC))
    )
    ticks = ticks.filter(~lost)  # the collector really was down for those symbols
    bars = minute_bars(ticks, session, presorted=True)
    no_recovery = pl.DataFrame(schema=BAR_SCHEMA)

    def coverage():
        return compute_coverage(DAY, bars, ticks, gaps, no_recovery, recovery_complete=False, session=session)

    timed = {
        "bars": best_of(args.repeat, lambda: minute_bars(ticks, session, presorted=True)),
        "coverage": best_of(args.repeat, coverage),
        "consistency": best_of(args.repeat, lambda: (day_volume(ticks, bars), invariant_violations(bars))),
    }
    cov = coverage()
    print(
        f"{ticks.height:,} ticks, {args.symbols:,} symbols, {bars.height:,} bars; expected {cov.expected_count:,} "
        f"symbol-minutes, present {cov.present_count:,} ({cov.share:.4%})"
    )
    for name, seconds in timed.items():
        print(f"{name:12s} {seconds:7.3f} s  {seconds / timed['bars']:5.2f}x bars")
    print(
        json.dumps(
            {
                "ticks": ticks.height,
                **{f"{k}_s": round(v, 3) for k, v in timed.items()},
                "coverage_x_bars": round(timed["coverage"] / timed["bars"], 2),
                "consistency_x_bars": round(timed["consistency"] / timed["bars"], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
