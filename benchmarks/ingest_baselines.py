"""The baselines of benchmarks/ingest.py, each run in its own child process on the same files.

pyarrow  pyarrow.json.read_json over the files (raw parsing, no validation; it skips the file
         with the three bad lines, which it cannot parse): the yardstick of the 1.5x target
polars   polars.read_ndjson with the archive's explicit schema over the same files: the parser
         the ingest's fast path uses, on its own
pandas   the same work as the ingest on the same bytes, as a careful pandas user would write it:
         every file read inside the timer, pandas.read_json(lines=True) (line by line with
         json.loads for a file with bad lines), the same validation, (symbol, cum)
         de-duplication preferring kis, sort, parquet write, minute bars, parquet write
"""

from __future__ import annotations

import io
import json
import time
from datetime import date
from pathlib import Path

DAY = date(2026, 11, 20)
BAD_FILE = "08_00.jsonl"  # where generate() puts the bad lines


def parseable_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.jsonl")) if p.name != BAD_FILE]


def run_pyarrow(root: Path) -> dict:
    import pyarrow.json as pj

    started = time.perf_counter()
    rows = sum(pj.read_json(path).num_rows for path in parseable_files(root))  # bad lines: no parse
    return {"rows": rows, "seconds": time.perf_counter() - started}


def run_polars(root: Path) -> dict:
    import polars as pl

    from stock_pipelines.archive.reader import POLARS_SCHEMA

    started = time.perf_counter()
    rows = sum(pl.read_ndjson(path, schema=POLARS_SCHEMA).height for path in parseable_files(root))
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
    numeric = {
        name: pd.to_numeric(ticks[name], errors="coerce") for name in ("ts", "rx", "px", "qty", "cum", "seq")
    }
    ticks = ticks.assign(**numeric).dropna(subset=list(numeric)).astype({name: "int64" for name in numeric})
    ts = ticks["ts"]
    valid = ticks[
        (ticks["v"] == 1)
        & ticks["src"].isin(["kis", "kiwoom"])
        & ticks["sym"].astype(str).str.fullmatch(r"[0-9A-Z]{6}")
        & (ticks["px"] > 0)
        & (ticks["qty"] > 0)
        & (ticks["cum"] >= ticks["qty"])
        & (
            ((ts >= open_us - tolerance) & (ts < auction_us))
            | ((ts >= close_us - tolerance) & (ts <= close_us + tolerance))
        )
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
        .agg(
            open=("px", "first"),
            high=("px", "max"),
            low=("px", "min"),
            close=("px", "last"),
            volume=("qty", "sum"),
            trades=("px", "size"),
        )
        .reset_index()
    )
    bars.to_parquet(data / "pandas_minute_bars.parquet", index=False)
    return {
        "lines_in": lines_in,
        "rows_kept": len(kept),
        "quarantined": quarantined,
        "bars": len(bars),
        "seconds": time.perf_counter() - started,
    }
