"""Benchmark: a month of simulated trading days backfilled through Dagster, against a plain script.

    .venv/bin/python benchmarks/backfill_month.py [--days 20] [--symbols 2700] [--quick] [--keep]

Writes `--days` simulated KRX trading days (the last ones before 2026-11-28) of `--symbols`
symbols as a collector would have archived them (`sim.archive_day.write_day_archive`, the
archive `sim day` writes), then does the same work twice on the same archive, after imports:

  dagster  each day is one run of raw_ticks -> tick_minute_bars -> gap_report (an asset job of
           the three, executed for the partition, console logs off) on an instance from a copy
           of the project's dagster_home/dagster.yaml (the embedded default: SQLite storage), two
           runs at a time
           in two processes as its run queue allows (max_concurrent_runs: 2), as the runs of a UI
           backfill of those assets over the month execute; the daemon's queueing and each run's
           launch are not in it
  plain    the same two processes and days without Dagster runs: archive.ticks.DayIngest into
           the lake, archive.bars.minute_bars into the lake (read + dedupe + bars: what raw_ticks
           and tick_minute_bars do), and gap_report's body called directly so the work is the same

Prints days per minute, ticks per second and the larger process's peak memory of each, and
Dagster's overhead over the plain script (each way run `--repeat` times, alternating, its fastest
run kept). Target: overhead < 15%. `--quick` is 3 days of 60
symbols (what stock_pipelines_tests/archive/test_backfill_month.py runs). The last line printed
is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

LAST_DAY = date(2026, 11, 27)
PROCESSES = 2  # the embedded default's max_concurrent_runs
OVERHEAD_TARGET = 0.15
REPO = Path(__file__).resolve().parent.parent


def month_days(count: int, last: date = LAST_DAY) -> list[date]:
    from stock_pipelines.market import krx_calendar

    days = krx_calendar().trading_days(last - timedelta(days=2 * count + 14), last)
    return days[-count:]


def generate(root: Path, days: list[date], symbols: int) -> int:
    """The archive of every day; returns the trade lines written."""
    from stock_pipelines.sim.archive_day import write_day_archive

    return sum(write_day_archive(root, day, symbols=symbols, seed=11).trades_written for day in days)


def plain_day(day: date) -> dict:
    """One day without a Dagster run: the domain calls of raw_ticks and tick_minute_bars, and
    gap_report's body on a bare context."""
    from stock_pipelines import lake
    from stock_pipelines.archive.bars import minute_bars
    from stock_pipelines.archive.config import ArchiveConfig
    from stock_pipelines.archive.ticks import TICKS_SCHEMA, DayIngest, day_files
    from stock_pipelines.defs.assets.day_inputs import universe
    from stock_pipelines.gaps.summary import gaps_frame
    from stock_pipelines.heartbeat.store import HeartbeatStore
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.recovery.detect import collectors_of_day, detect_gaps
    from stock_pipelines.redis_conn import redis_client
    from stock_pipelines.settings import Settings, environment

    session = krx_calendar().session(day)
    config = ArchiveConfig.from_env(environment())
    run = DayIngest(day_files(config.roots(), day), session, config.session_tolerance)
    lake.write_partition_batches(run.batches(), TICKS_SCHEMA, "raw_ticks", day)
    lake.write_partition(run.quarantine, "raw_ticks_quarantine", day)
    bars = minute_bars(lake.scan_partition("raw_ticks", day), session, presorted=True)
    lake.write_partition(bars, "tick_minute_bars", day)
    # gap_report's work without a Dagster run: the same heartbeats, universe and detection
    root = Settings.from_env().data_dir
    ticks = lake.read_partition("raw_ticks", day)
    found = collectors_of_day(day, ticks, HeartbeatStore(redis_client()), config.archive_dir)
    gaps = detect_gaps(day, ticks, found, universe=universe(day, ticks, root), archive_root=config.archive_dir)
    lake.write_partition(gaps_frame(gaps), "gap_report", day, root)
    return {"lines_in": run.stats.lines_in, "bars": bars.height}


def backfill_job():
    """The job a backfill of the three assets runs for each partition, resolved once a process."""
    import dagster as dg

    from stock_pipelines.defs.assets.gap_report import gap_report
    from stock_pipelines.defs.assets.raw_ticks import raw_ticks
    from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
    from stock_pipelines.defs.resources import default_resources

    assets = [raw_ticks, tick_minute_bars, gap_report]
    job = dg.define_asset_job("backfill_month", selection=assets)
    definitions = dg.Definitions(assets=assets, jobs=[job], resources=default_resources())
    return definitions.resolve_job_def("backfill_month")

# a UI backfill's runs log to the event log, not to a console: keep the console quiet
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def dagster_day(day: date, job, instance) -> dict:
    result = job.execute_in_process(partition_key=day.isoformat(), instance=instance, run_config=QUIET)
    meta = {
        e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    return {
        "lines_in": meta["raw_ticks"]["lines_in"].value,
        "bars": meta["tick_minute_bars"]["dagster/row_count"].value,
    }


def worker(way: str, days: list[str], env: dict, ready, go, results) -> None:
    """One of the two processes: imports first, then its days once `go` is set."""
    os.environ.update(env)
    import dagster as dg

    import stock_pipelines.definitions  # noqa: F401  (the code location a run loads)
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.redis_conn import redis_client

    krx_calendar()
    redis_client().ping()  # gap_report's Redis (embedded by default) is up before the clock starts
    instance = dg.DagsterInstance.get() if way == "dagster" else None
    job = backfill_job() if way == "dagster" else None
    ready.put(os.getpid())
    go.wait()
    started = time.perf_counter()
    totals = {"lines_in": 0, "bars": 0}
    for text in days:
        day = date.fromisoformat(text)
        done = dagster_day(day, job, instance) if way == "dagster" else plain_day(day)
        for key in totals:
            totals[key] += done[key]
    totals["seconds"] = time.perf_counter() - started
    totals["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put(totals)


def run_way(way: str, days: list[date], base: Path, archive: Path) -> dict:
    """All days, split over PROCESSES processes (day i to process i % PROCESSES); wall time from
    the moment every process has imported to the last one done."""
    data = base / f"data-{way}"
    env = {
        "STOCK_PIPELINES_DATA_DIR": str(data),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(archive),
        "DAGSTER_HOME": str(base / "dagster_home"),
    }
    if way == "dagster":  # storage created once here: two processes creating it at once collide
        import dagster as dg

        dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).dispose()
    context = mp.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    shares = [[d.isoformat() for d in days[i::PROCESSES]] for i in range(PROCESSES)]
    procs = [
        context.Process(target=worker, args=(way, share, env, ready, go, results))
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    parts = [_result(results, procs, way) for _ in procs]
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout=60)
        if proc.exitcode != 0:
            raise SystemExit(f"{way} worker failed (exit {proc.exitcode})")
    lines = sum(p["lines_in"] for p in parts)
    return {
        "days": len(days),
        "lines_in": lines,
        "bars": sum(p["bars"] for p in parts),
        "seconds": seconds,
        "days_per_minute": round(len(days) / seconds * 60, 2),
        "ticks_per_s": round(lines / seconds),
        "peak_rss_mib": round(max(p["peak_rss_mib"] for p in parts)),
    }


def _result(results, procs, way: str) -> dict:
    """The next worker's figures; a worker that died instead fails the benchmark, not hangs it."""
    while True:
        try:
            return results.get(timeout=5)
        except queue.Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                raise SystemExit(f"a {way} worker failed") from None


def benchmark(days: int, symbols: int, base: Path, repeat: int = 1) -> dict:
    """Generate, run both ways (`repeat` times, alternating; each way's fastest run: the cores
    are shared), compare: the summary the last line prints."""
    archive = base / "archive"
    home = base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    month = month_days(days)
    started = time.perf_counter()
    written = generate(archive, month, symbols)
    print(
        f"generated {len(month)} days of {symbols:,} symbols: {written:,} trades in {time.perf_counter() - started:.1f}s"
    )
    runs: dict[str, list[dict]] = {"plain": [], "dagster": []}
    for _ in range(max(1, repeat)):
        for way, results in runs.items():
            results.append(run_way(way, month, base, archive))
    plain, dagster = (min(runs[way], key=lambda r: r["seconds"]) for way in ("plain", "dagster"))
    overhead = dagster["seconds"] / plain["seconds"] - 1
    for name, way in (("dagster", dagster), ("plain", plain)):
        print(
            f"{name + ':':8} {way['days']} days, {way['lines_in']:,} ticks in {way['seconds']:.1f}s = "
            f"{way['days_per_minute']:.1f} days/min, {way['ticks_per_s']:,} ticks/s, peak {way['peak_rss_mib']:,} MiB"
        )
    print(f"Dagster's overhead over the plain script: {overhead:+.1%} (target < {OVERHEAD_TARGET:.0%})")
    return {
        "days": len(month),
        "symbols": symbols,
        "trades_written": written,
        "dagster": dagster,
        "plain": plain,
        "overhead": round(overhead, 4),
        "runs_seconds": {way: [r["seconds"] for r in results] for way, results in runs.items()},
        "same_work": (dagster["lines_in"], dagster["bars"]) == (plain["lines_in"], plain["bars"]),
        "targets_met": {f"overhead<{OVERHEAD_TARGET}": overhead < OVERHEAD_TARGET},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=2700)
    parser.add_argument("--quick", action="store_true", help="3 days of 60 symbols")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each way, alternating; the fastest counts"
    )
    parser.add_argument("--keep", action="store_true", help="keep the archive, lakes and instance")
    args = parser.parse_args()
    days, symbols = (3, 60) if args.quick else (args.days, args.symbols)
    base = Path(tempfile.mkdtemp(prefix="backfill-month-"))
    try:
        summary = benchmark(days, symbols, base, args.repeat)
        print(json.dumps(summary))
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
