"""Benchmark: archive -> raw_ticks + tick_minute_bars on a synthetic day, against two baselines.

    .venv/bin/python benchmarks/ingest.py [--ticks 10000000] [--dir /tmp/ingest-bench] [--keep]

Generates a day of JSONL trade files (hourly, the writer's line format) with a few bad lines
and a slice of cross-broker duplicates, then times, each in its own child process so peak
memory is measured per step:
  ours     archive.ticks.ingest_files + lake writes + archive.bars.minute_bars + lake write
  pyarrow  pyarrow.json.read_json over the same files (raw parsing, no validation; it skips the
           file with the three bad lines, which it cannot parse)
  pandas   the same work on the same bytes, as a careful pandas user would write it: every file
           read inside the timer, pandas.read_json(lines=True) (line by line with json.loads for
           a file with bad lines), the same validation, (symbol, cum) de-duplication preferring
           kis, sort, parquet write, minute bars, parquet write
Each step's CPU seconds start after its imports (an interpreter importing pandas or polars is not
ingest work). Targets: >= 1,000,000 ticks/s, >= 8x pandas, <= 1.3x pyarrow's time, < 2 GiB peak.
The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import io
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
        "seconds_assemble_write_ticks": ticks_written - parsed,
        "seconds_bars": done - ticks_written,
    }


def run_pyarrow(root: Path) -> dict:
    import pyarrow.json as pj

    started = time.perf_counter()
    files = [
        p for p in sorted(root.rglob("*.jsonl")) if p.name != "08_00.jsonl"
    ]  # raw parse fails on bad lines
    rows = sum(pj.read_json(path).num_rows for path in files)
    return {"rows": rows, "seconds": time.perf_counter() - started}


FIELDS = ["v", "src", "sym", "ts", "rx", "px", "qty", "cum", "seq"]


def _pandas_read(path: Path):
    """One archive file as a DataFrame and its count of unparseable lines."""
    import pandas as pd

    raw = path.read_bytes()
    try:
        return pd.read_json(io.BytesIO(raw), lines=True, dtype=False), 0
    except ValueError:  # a bad line anywhere: parse line by line, keep the objects
        records, bad = [], 0
        for line in raw.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
        return pd.DataFrame.from_records(records), bad


def run_pandas(root: Path, data: Path) -> dict:
    """The same work as run_ours in pandas, on the same files (see the module docstring)."""
    import pandas as pd

    from stock_pipelines.archive.ticks import day_files
    from stock_pipelines.market import krx_calendar

    session = krx_calendar().session(DAY)
    us = 1_000_000
    open_us = int(session.open.timestamp()) * us
    auction_us = int(session.closing_auction_start.timestamp()) * us
    close_us = int(session.close.timestamp()) * us
    tolerance = 5 * us
    started = time.perf_counter()
    frames, bad, lines_in = [], 0, 0
    for archive_file in day_files([(root, "")], DAY):
        frame, unparsed = _pandas_read(archive_file.path)
        bad += unparsed
        lines_in += len(frame) + unparsed
        frames.append(frame.assign(collector=archive_file.collector))
    ticks = pd.concat(frames, ignore_index=True)
    ticks = ticks.dropna(subset=FIELDS)
    numeric = {name: pd.to_numeric(ticks[name], errors="coerce") for name in ("ts", "rx", "px", "qty", "cum", "seq")}
    ticks = ticks.assign(**numeric).dropna(subset=list(numeric)).astype({name: "int64" for name in numeric})
    ts = ticks["ts"]
    valid = ticks[
        (ticks["v"] == 1)
        & ticks["src"].isin(["kis", "kiwoom"])
        & ticks["sym"].astype(str).str.fullmatch(r"[0-9A-Z]{6}")
        & (ticks["px"] > 0) & (ticks["qty"] > 0) & (ticks["cum"] >= ticks["qty"])
        & (((ts >= open_us - tolerance) & (ts < auction_us)) | ((ts >= close_us - tolerance) & (ts <= close_us + tolerance)))
    ]
    quarantined = lines_in - len(valid)
    ranked = valid.assign(_rank=(valid["src"] != "kis").astype("int8"))
    ordered = ranked.sort_values(["sym", "cum", "_rank", "rx"], kind="stable")
    kept = ordered.drop_duplicates(["sym", "cum"], keep="first").drop(columns="_rank")
    data.mkdir(parents=True, exist_ok=True)
    kept.to_parquet(data / "pandas_raw_ticks.parquet", index=False)
    minute = (kept["ts"] // (60 * us)) * (60 * us)
    bars = (
        kept.assign(minute=minute)
        .groupby(["sym", "minute"], sort=True)
        .agg(open=("px", "first"), high=("px", "max"), low=("px", "min"), close=("px", "last"),
             volume=("qty", "sum"), trades=("px", "size"))
        .reset_index()
    )
    bars.to_parquet(data / "pandas_minute_bars.parquet", index=False)
    return {"lines_in": lines_in, "rows_kept": len(kept), "quarantined": quarantined, "bars": len(bars),
            "seconds": time.perf_counter() - started}


def import_step(step: str) -> None:
    """What a step imports, loaded before its CPU clock starts."""
    import polars  # noqa: F401

    from stock_pipelines import lake  # noqa: F401
    from stock_pipelines.archive import bars, ticks  # noqa: F401
    from stock_pipelines.market import krx_calendar

    krx_calendar()
    if step == "pyarrow":
        import pyarrow.json  # noqa: F401
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
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--child", choices=["ours", "pyarrow", "pandas"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        import_step(args.child)
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = {
            "ours": lambda: run_ours(args.dir, args.data),
            "pyarrow": lambda: run_pyarrow(args.dir),
            "pandas": lambda: run_pandas(args.dir, args.data),
        }[args.child]()
        after = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds of the step (all threads): a fairer yardstick than wall time when other
        # jobs share the machine's cores
        result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    base = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    root = args.dir or base / "archive"
    data = args.data or base / "data"
    try:
        if not args.reuse:
            if root.exists():
                shutil.rmtree(root)
            started = time.perf_counter()
            lines, size = generate(root, args.ticks)
            print(
                f"generated {lines:,} lines, {size / 2**20:,.0f} MiB in {time.perf_counter() - started:.1f}s"
            )
        runs: dict[str, list[dict]] = {"ours": [], "pyarrow": [], "pandas": []}
        for _ in range(max(1, args.repeat)):
            for step, results in runs.items():
                results.append(child(step, root, data))
        ours, arrow, pandas = (
            min(runs[step], key=lambda r: r["seconds"]) for step in ("ours", "pyarrow", "pandas")
        )
        ours["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs["ours"])
        ticks_per_s = ours["lines_in"] / ours["seconds"]
        arrow_rate = arrow["rows"] / arrow["seconds"]
        pandas_rate = pandas["lines_in"] / pandas["seconds"]
        same_work = all(ours[k] == pandas[k] for k in ("lines_in", "rows_kept", "bars"))
        print(
            f"ours:    {ours['lines_in']:,} lines in {ours['seconds']:.2f}s = {ticks_per_s:,.0f} ticks/s, "
            f"peak {ours['peak_rss_mib']:,.0f} MiB (parse+validate {ours['seconds_parse_validate']:.2f}s, "
            f"sort/dedupe/write {ours['seconds_assemble_write_ticks']:.2f}s, bars {ours['seconds_bars']:.2f}s)"
        )
        print(
            f"pyarrow: {arrow['rows']:,} rows in {arrow['seconds']:.2f}s = {arrow_rate:,.0f} rows/s, "
            f"peak {arrow['peak_rss_mib']:,.0f} MiB"
        )
        print(f"pandas:  {pandas['lines_in']:,} lines in {pandas['seconds']:.2f}s = {pandas_rate:,.0f} ticks/s, "
              f"peak {pandas['peak_rss_mib']:,.0f} MiB; kept {pandas['rows_kept']:,} rows (ours {ours['rows_kept']:,}), "
              f"{pandas['bars']:,} bars (ours {ours['bars']:,}): same work {'yes' if same_work else 'NO'}")
        print(
            f"cpu seconds: ours {ours['cpu_seconds']:.1f}, pyarrow {arrow['cpu_seconds']:.1f}, "
            f"pandas {pandas['cpu_seconds']:.1f}"
        )
        summary = {
            "ticks": ours["lines_in"],
            "bytes": sum(p.stat().st_size for p in root.rglob("*.jsonl")),
            "repeat": max(1, args.repeat),
            "ticks_per_s": round(ticks_per_s),
            "peak_rss_mib": round(ours["peak_rss_mib"]),
            "vs_pandas": round(ticks_per_s / pandas_rate, 2),
            "vs_pyarrow": round(ticks_per_s / arrow_rate, 3),
            "time_vs_pyarrow": round(ours["seconds"] / arrow["seconds"], 3),
            "cpu_ticks_per_s": round(ours["lines_in"] / ours["cpu_seconds"]),
            "cpu_vs_pandas": round(
                (ours["lines_in"] / ours["cpu_seconds"]) / (pandas["lines_in"] / pandas["cpu_seconds"]), 2
            ),
            "pandas_same_work": same_work,
            "pandas_peak_rss_mib": round(pandas["peak_rss_mib"]),
            "cpu_time_vs_pyarrow": round(ours["cpu_seconds"] / arrow["cpu_seconds"], 3),
            "targets_met": {
                "ticks_per_s>=1e6": ticks_per_s >= 1_000_000,
                "vs_pandas>=8": ticks_per_s / pandas_rate >= 8,
                "time_vs_pyarrow<=1.3": ours["seconds"] / arrow["seconds"] <= 1.3,
                "peak_rss<2GiB": ours["peak_rss_mib"] < 2048,
            },
        }
        print(json.dumps(summary))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
            if args.dir and not args.reuse:
                shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
