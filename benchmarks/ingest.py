"""Benchmark: archive -> raw_ticks + tick_minute_bars on a synthetic day, against three baselines.

    .venv/bin/python benchmarks/ingest.py [--ticks 10000000] [--repeat N] [--scaling 1000000]
                                          [--with-30m] [--dir DIR --keep | --reuse]

Generates a day of JSONL trade files (hourly, the writer's line format) with a few bad lines
and a slice of cross-broker duplicates, then times, each in its own child process so peak
memory is measured per step:
  ours     what raw_ticks and tick_minute_bars do: archive.ticks.DayIngest streamed into the lake
           (parse, every reject rule, order, dedupe, Parquet), then archive.bars.minute_bars from
           the written partition and its lake write; stage times are printed
  pyarrow, polars, pandas   benchmarks/ingest_baselines.py (raw parses, and the same work in pandas)
Each step's clock starts after its imports (an interpreter importing pandas or polars is not
ingest work); CPU seconds are printed too (a fairer yardstick when other jobs share the cores).
Then the scaling line: ours alone at each --scaling size (default 1M) and at --ticks, and at 30M
with --with-30m (opt-in: generating and ingesting 30M lines takes several minutes here), with
peak memory per size and its growth per million ticks.
Targets: wall time <= 1.5x pyarrow's parse, peak < 1.5 GiB (at 10M ticks or more), the same
rows and bars as pandas, and memory flat with the day (< 10 MiB more per million ticks). Flat is
judged between the two largest sizes when the line has three or more: a day of a million ticks
is one range of rows (no range is encoded while the next is built) read in pieces smaller than
the 64 MiB cap, so its peak lacks costs that are fixed from a few million ticks on; the growth
from the smallest size is printed too. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

DAY = date(2026, 11, 20)
COLLECTOR = "kis-1"
FLAT_MIB_PER_MILLION = 10  # what "flat" allows: well under the 60 MiB a million rows take in memory


def generate(root: Path, ticks: int, symbols: int = 2500, seed: int = 7) -> tuple[int, int]:
    import numpy as np
    import polars as pl

    from stock_pipelines.market import SEOUL

    rng = np.random.default_rng(seed)
    day_dir = root / COLLECTOR / "trades" / DAY.strftime("%Y%m%d")
    day_dir.mkdir(parents=True, exist_ok=True)
    open_us = int(datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL).timestamp()) * 1_000_000
    auction_us = open_us + (6 * 3600 + 20 * 60) * 1_000_000
    names = np.array([f"{i:06d}" for i in rng.choice(999_999, symbols, replace=False)])
    carry = np.zeros(symbols, dtype=np.int64)
    hours = [
        (open_us + h * 3_600_000_000, min(open_us + (h + 1) * 3_600_000_000, auction_us)) for h in range(7)
    ]
    total_span = auction_us - open_us
    seq = 0
    lines = 0
    for hour, (start, end) in enumerate(hours):
        count = round(ticks * (end - start) / total_span) if hour < 6 else ticks - lines
        ts = np.sort(rng.integers(start, end, count))
        sym = rng.zipf(1.3, count) % symbols
        qty = rng.integers(1, 200, count)
        frame = pl.DataFrame({"sym_i": sym, "ts": ts, "qty": qty}).with_columns(
            cum=pl.col("qty").cum_sum().over("sym_i")
        )
        cum = frame["cum"].to_numpy() + carry[sym]
        np.maximum.at(carry, sym, cum)
        out = pl.DataFrame(
            {
                "src": "kis",
                "sym": names[sym],
                "ts": ts,
                "rx": ts + rng.integers(200, 5_000, count),
                "px": 10_000 + (sym * 37 % 90_000) + rng.integers(0, 50, count),
                "qty": qty,
                "cum": cum,
                "seq": np.arange(seq + 1, seq + count + 1),
                "v": 1,
            }
        )
        seq += count
        lines += count
        out.write_ndjson(day_dir / f"{9 + hour:02d}_00.jsonl")
    # a little of what a real day has: bad lines and a replayed slice from a second collector
    with (day_dir / "08_00.jsonl").open("ab") as handle:  # the pyarrow baseline skips this file
        handle.write(b'[1,2]\n{"v":1,"sym":"../../x"}\nnot json\n')
    lines += 3
    replay_dir = root / "kiwoom-1" / "trades" / DAY.strftime("%Y%m%d")
    replay_dir.mkdir(parents=True, exist_ok=True)
    with (day_dir / "11_00.jsonl").open("rb") as source, (replay_dir / "11_00.jsonl").open("wb") as target:
        for _ in range(min(10_000, ticks // 100)):
            target.write(source.readline().replace(b'"src":"kis"', b'"src":"kiwoom"'))
            lines += 1
    size = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
    return lines, size


def run_ours(root: Path, data: Path) -> dict:
    from stock_pipelines import lake
    from stock_pipelines.archive.bars import minute_bars
    from stock_pipelines.archive.ticks import TICKS_SCHEMA, DayIngest, day_files
    from stock_pipelines.market import krx_calendar

    session = krx_calendar().session(DAY)
    started = time.perf_counter()
    run = DayIngest(day_files([(root, "")], DAY), session)  # what the raw_ticks asset does
    parsed = time.perf_counter()
    lake.write_partition_batches(run.batches(), TICKS_SCHEMA, "raw_ticks", DAY, data)
    lake.write_partition(run.quarantine, "raw_ticks_quarantine", DAY, data)
    ticks_written = time.perf_counter()
    peak_before_bars = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bars = minute_bars(lake.scan_partition("raw_ticks", DAY, data), session, presorted=True)
    lake.write_partition(bars, "tick_minute_bars", DAY, data)
    done = time.perf_counter()
    s = run.stats
    return {
        "lines_in": s.lines_in,
        "rows_kept": s.rows_kept,
        "duplicates": s.duplicates,
        "quarantined": s.quarantined,
        "bars": bars.height,
        "seconds": done - started,
        "seconds_parse_validate": parsed - started,
        "seconds_order_dedupe_write": ticks_written - parsed,
        "seconds_bars": done - ticks_written,
        "peak_rss_mib_raw_ticks": peak_before_bars,  # the peak up to the bars (the whole run's comes later)
    }


def import_step(step: str) -> None:
    """What a step imports, loaded before its clock starts."""
    import polars  # noqa: F401

    from stock_pipelines import lake  # noqa: F401
    from stock_pipelines.archive import bars, reader, ticks  # noqa: F401
    from stock_pipelines.market import krx_calendar

    krx_calendar()
    if step == "pyarrow":
        import pyarrow.json
    if step == "pandas":
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401


def child(step: str, root: Path, data: Path) -> dict:
    """Run one step in a fresh interpreter; its own peak RSS comes back with the result."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", step, "--dir", str(root), "--data", str(data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(step: str, root: Path, data: Path) -> None:
    import ingest_baselines as baselines

    import_step(step)
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "ours": lambda: run_ours(root, data),
        "pyarrow": lambda: baselines.run_pyarrow(root),
        "polars": lambda: baselines.run_polars(root),
        "pandas": lambda: baselines.run_pandas(root, data),
    }[step]()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["peak_rss_mib"] = after.ru_maxrss / 1024
    print(json.dumps(result))


def compare(root: Path, data: Path, repeat: int) -> dict:
    """Every step on the same files, `repeat` times alternating; each step's fastest run."""
    steps = ("ours", "pyarrow", "polars", "pandas")
    runs: dict[str, list[dict]] = {step: [] for step in steps}
    for _ in range(max(1, repeat)):
        for step in steps:
            runs[step].append(child(step, root, data))
    best = {step: min(runs[step], key=lambda r: r["seconds"]) for step in steps}
    best["ours"]["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs["ours"])
    best["ours"]["all_seconds"] = [round(r["seconds"], 2) for r in runs["ours"]]
    best["pyarrow"]["all_seconds"] = [round(r["seconds"], 2) for r in runs["pyarrow"]]
    return best


def scaling_point(ticks: int, base: Path) -> dict:
    root, data = base / f"scale-{ticks}", base / f"scale-{ticks}-data"
    generate(root, ticks)
    result = child("ours", root, data)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="archive root to generate into (default: a temp dir)"
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--reuse", action="store_true", help="reuse files already in --dir")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each step N times, alternating, and keep each one's fastest run "
        "(this machine's 2 cores are shared: the minimum is the least disturbed)",
    )
    parser.add_argument(
        "--scaling", default="1000000", help="comma-separated extra sizes for ours alone ('' for none)"
    )
    parser.add_argument("--with-30m", action="store_true", help="add 30,000,000 ticks to the scaling line")
    parser.add_argument("--child", choices=["ours", "pyarrow", "polars", "pandas"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.dir, args.data)
        return

    base = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    root = args.dir or base / "archive"
    data = args.data or base / "data"
    try:
        if not args.reuse:
            shutil.rmtree(root, ignore_errors=True)
            started = time.perf_counter()
            lines, size = generate(root, args.ticks)
            print(
                f"generated {lines:,} lines, {size / 2**20:,.0f} MiB in {time.perf_counter() - started:.1f}s"
            )
        best = compare(root, data, args.repeat)
        summary = report(best, root)
        sizes = sorted(
            {int(s) for s in args.scaling.split(",") if s} | ({30_000_000} if args.with_30m else set())
        )
        points = {summary["ticks"]: best["ours"]}
        for ticks in sizes:
            if ticks != args.ticks:
                points[ticks] = scaling_point(ticks, base)
        summary.update(scaling(points))
        flat = summary["peak_mib_per_million_ticks_judged"] < FLAT_MIB_PER_MILLION
        summary["targets_met"]["memory_flat"] = flat if len(points) > 1 else None  # one size: no line
        print(json.dumps(summary))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
            if args.dir and not args.reuse:
                shutil.rmtree(args.dir, ignore_errors=True)


def report(best: dict, root: Path) -> dict:
    ours, arrow, polars, pandas = (best[step] for step in ("ours", "pyarrow", "polars", "pandas"))
    ticks_per_s = ours["lines_in"] / ours["seconds"]
    arrow_rate = arrow["rows"] / arrow["seconds"]
    polars_rate = polars["rows"] / polars["seconds"]
    pandas_rate = pandas["lines_in"] / pandas["seconds"]
    same_work = all(ours[k] == pandas[k] for k in ("lines_in", "rows_kept", "bars"))
    print(
        f"ours:    {ours['lines_in']:,} lines in {ours['seconds']:.2f}s = {ticks_per_s:,.0f} ticks/s, "
        f"peak {ours['peak_rss_mib']:,.0f} MiB; stages: parse+validate {ours['seconds_parse_validate']:.2f}s, "
        f"order/dedupe/write {ours['seconds_order_dedupe_write']:.2f}s, bars {ours['seconds_bars']:.2f}s"
    )
    for name, step, rate in (("pyarrow", arrow, arrow_rate), ("polars", polars, polars_rate)):
        print(
            f"{name + ':':8} {step['rows']:,} rows parsed in {step['seconds']:.2f}s = {rate:,.0f} rows/s "
            f"(ours takes {ours['seconds'] / step['seconds']:.2f}x its time), peak {step['peak_rss_mib']:,.0f} MiB"
        )
    print(
        f"pandas:  {pandas['lines_in']:,} lines in {pandas['seconds']:.2f}s = {pandas_rate:,.0f} ticks/s, "
        f"peak {pandas['peak_rss_mib']:,.0f} MiB; kept {pandas['rows_kept']:,} rows (ours {ours['rows_kept']:,}), "
        f"{pandas['bars']:,} bars (ours {ours['bars']:,}): same work {'yes' if same_work else 'NO'}"
    )
    print(
        f"cpu seconds: ours {ours['cpu_seconds']:.1f}, pyarrow {arrow['cpu_seconds']:.1f}, "
        f"polars {polars['cpu_seconds']:.1f}, pandas {pandas['cpu_seconds']:.1f}"
    )
    time_vs_pyarrow = ours["seconds"] / arrow["seconds"]
    return {
        "ticks": ours["lines_in"],
        "bytes": sum(p.stat().st_size for p in root.rglob("*.jsonl")),
        "ticks_per_s": round(ticks_per_s),
        "peak_rss_mib": round(ours["peak_rss_mib"]),
        "time_vs_pyarrow": round(time_vs_pyarrow, 3),
        "cpu_time_vs_pyarrow": round(ours["cpu_seconds"] / arrow["cpu_seconds"], 3),
        "time_vs_polars_parse": round(ours["seconds"] / polars["seconds"], 3),
        "vs_pandas": round(ticks_per_s / pandas_rate, 2),
        "pyarrow_rows_per_s": round(arrow_rate),
        "polars_rows_per_s": round(polars_rate),
        "stage_seconds": {
            "parse_validate": round(ours["seconds_parse_validate"], 2),
            "order_dedupe_write": round(ours["seconds_order_dedupe_write"], 2),
            "bars": round(ours["seconds_bars"], 2),
        },
        "runs_seconds": {"ours": ours["all_seconds"], "pyarrow": arrow["all_seconds"]},
        "pandas_same_work": same_work,
        "targets_met": {
            "time_vs_pyarrow<=1.5": time_vs_pyarrow <= 1.5,
            "peak_rss<1.5GiB": ours["peak_rss_mib"] < 1536 if ours["lines_in"] >= 10_000_000 else None,
            "same_work_as_pandas": same_work,
        },
    }


def scaling(points: dict[int, dict]) -> dict:
    """The scaling line: ticks/s and peak per size, and how much the peak grows with the day."""
    sizes = sorted(points)
    for ticks in sizes:
        p = points[ticks]
        print(
            f"scaling: {ticks:>11,} ticks: {p['lines_in'] / p['seconds']:,.0f} ticks/s, peak {p['peak_rss_mib']:,.0f} MiB"
        )
    for low, high in zip(sizes, sizes[1:]):
        step = _growth(points[low], points[high])
        print(f"scaling: {low:,} -> {high:,} ticks: peak {step:+.1f} MiB per million ticks")
    growth = _growth(points[sizes[0]], points[sizes[-1]])
    judged = _growth(points[sizes[-2]], points[sizes[-1]]) if len(sizes) >= 3 else growth
    print(
        f"scaling: peak grows {growth:.1f} MiB per million ticks from the smallest size, {judged:.1f} "
        f"between the two largest (flat: < {FLAT_MIB_PER_MILLION})"
    )
    return {
        "scaling": [
            {
                "ticks": t,
                "ticks_per_s": round(points[t]["lines_in"] / points[t]["seconds"]),
                "peak_rss_mib": round(points[t]["peak_rss_mib"]),
            }
            for t in sizes
        ],
        "peak_mib_per_million_ticks": round(growth, 1),
        "peak_mib_per_million_ticks_judged": round(judged, 1),
    }


def _growth(small: dict, large: dict) -> float:
    """MiB more peak per million more ticks from one scaling point to a larger one."""
    span = (large["lines_in"] - small["lines_in"]) / 1e6
    return (large["peak_rss_mib"] - small["peak_rss_mib"]) / span if span else 0.0


if __name__ == "__main__":
    main()
