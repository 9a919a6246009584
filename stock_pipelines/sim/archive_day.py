"""`sim day`: one simulated day written as a collector would have archived it.

The archive contract is docs/archive-format.md (`archive.layout` paths, `TradeRecord` lines).
What the simulated collector does:
- starts (system `UP`) 10 minutes before the open and stops (`DOWN`) 5 minutes after the close,
  with a `HEARTBEAT` every 5 s of simulated time while up;
- receives each trade a few milliseconds after its execution (`rx`, never decreasing);
- during an outage window it is down: no heartbeats, and every trade executed in the window (or
  still in flight when it died) is missing; it then restarts (`UP`, detail restart) and, as a
  new writer process, numbers lines from seq 1 again;
- N corrupted lines are added, deterministically: torn tails (a truncated last line with no
  newline, first at the crash before each outage), bad JSON, wrong types, bad symbols and
  out-of-session times. They are extra lines: valid lines keep a gapless seq within a run.

The truth of what happened (every trade, and whether it reached the archive) can be written to
a Parquet file outside the archive, with a JSON manifest of outages and corrupted lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from stock_pipelines import atomic_files
from stock_pipelines.archive.layout import check_collector_id, system_path, trades_path
from stock_pipelines.archive.record import SCHEMA_VERSION, SystemRecord
from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US, to_us
from stock_pipelines.sim.day import SimDay

CORRUPT_KINDS = ("torn_tail", "bad_json", "wrong_type", "bad_symbol", "out_of_session")
HEARTBEAT_EVERY_S = 5
START_BEFORE_OPEN = timedelta(minutes=10)
STOP_AFTER_CLOSE = timedelta(minutes=5)
KST_OFFSET_S = 9 * 3600  # Asia/Seoul has had no daylight saving time since 1988


@dataclass(frozen=True)
class Outage:
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str, day: date) -> Outage:
        """`HH:MM-HH:MM` (Seoul time on `day`)."""
        try:
            first, last = text.split("-")
            start = datetime.combine(day, datetime.strptime(first.strip(), "%H:%M").time(), SEOUL)
            end = datetime.combine(day, datetime.strptime(last.strip(), "%H:%M").time(), SEOUL)
        except ValueError:
            raise ValueError(f"outage {text!r} is not HH:MM-HH:MM (e.g. 10:15-10:40)") from None
        if end <= start:
            raise ValueError(f"outage {text!r} ends before it starts")
        return cls(start, end)


@dataclass
class ArchiveDayResult:
    day: date
    collector: str
    trades_total: int
    trades_written: int
    trades_missing: int
    system_events: int
    files: list[Path] = field(default_factory=list)
    corrupt: list[dict] = field(default_factory=list)  # {"kind", "file", "line"} (1-based line)
    outages: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        kinds: dict[str, int] = {}
        for item in self.corrupt:
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
        return {
            "date": self.day.isoformat(),
            "collector": self.collector,
            "trades_total": self.trades_total,
            "trades_written": self.trades_written,
            "trades_missing": self.trades_missing,
            "system_events": self.system_events,
            "files": len(self.files),
            "corrupt": kinds,
            "outages": [f"{a}-{b}" for a, b in self.outages],
        }


def trade_line(src: str, sym: str, ts: int, rx: int, px: int, qty: int, cum: int, seq: int) -> str:
    """Exactly `TradeRecord(...).to_json_line()` (a test holds them equal), without a dataclass a line."""
    return (
        f'{{"src":"{src}","sym":"{sym}","ts":{ts},"rx":{rx},"px":{px},"qty":{qty},'
        f'"cum":{cum},"seq":{seq},"v":{SCHEMA_VERSION}}}\n'
    )


def write_day_archive(
    root: Path,
    day: date,
    *,
    seed: int = 0,
    symbols: int = 40,
    activity: float = 1.0,
    collector: str = "sim-kis-1",
    src: str = "kis",
    outages: list[Outage] | tuple[Outage, ...] = (),
    corrupt: int = 0,
    truth: Path | None = None,
    sim: SimDay | None = None,
) -> ArchiveDayResult:
    check_collector_id(collector)
    if corrupt < 0:
        raise ValueError(f"--corrupt must be >= 0, not {corrupt}")
    sim = sim or SimDay(day, seed=seed, symbols=symbols, activity=activity)
    session = sim.session
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, day.toordinal(), 0xA5C1]))

    order = sim.time_order
    ts = sim.ts[order]
    rx = np.maximum.accumulate(ts + rng.integers(2_000, 40_000, size=len(ts)))
    sym = sim.sym[order]
    px, qty, cum = sim.px[order], sim.qty[order], sim.cum[order]

    up_us, down_us = to_us(session.open - START_BEFORE_OPEN), to_us(session.close + STOP_AFTER_CLOSE)
    windows = sorted((to_us(o.start), to_us(o.end)) for o in outages)
    missing = np.zeros(len(ts), dtype=bool)
    for start, end in windows:
        missing |= ((ts >= start) & (ts < end)) | ((rx >= start) & (rx < end))
    run_id = np.zeros(len(ts), dtype=np.int64)  # which writer process received the trade
    for start, _ in windows:
        run_id += rx >= start
    kept = np.flatnonzero(~missing)
    seq = np.zeros(len(ts), dtype=np.int64)
    if len(kept):
        runs = run_id[kept]
        starts = np.flatnonzero(np.concatenate(([True], runs[1:] != runs[:-1])))
        position = np.arange(len(kept))
        seq[kept] = position - np.repeat(starts, np.diff(np.concatenate((starts, [len(kept)])))) + 1

    codes = sim.codes
    hour_key = (rx[kept] // US + KST_OFFSET_S) // 3600
    files: dict[Path, list[str]] = {}
    for key in np.unique(hour_key):
        path = trades_path(root, collector, datetime.fromtimestamp(int(key) * 3600 - KST_OFFSET_S, SEOUL))
        members = kept[hour_key == key]
        files[path] = [
            trade_line(src, codes[s], t, r, p, q, c, n)
            for s, t, r, p, q, c, n in zip(
                sym[members].tolist(), ts[members].tolist(), rx[members].tolist(), px[members].tolist(),
                qty[members].tolist(), cum[members].tolist(), seq[members].tolist(), strict=True,
            )
        ]

    corrupted = _corrupt(files, corrupt, rng, windows, kept, rx, root, collector, sim)
    system_lines = _system_lines(collector, up_us, down_us, windows, rx[kept], seq[kept])
    system_file = system_path(root, collector, session.open)

    trade_dir = trades_path(root, collector, session.open).parent
    if trade_dir.exists():  # a rerun replaces the day: hours not written this time must not linger
        for stale in trade_dir.glob("*.jsonl"):
            if stale not in files:
                stale.unlink()
    for path, lines in sorted(files.items()):
        atomic_files.write_text(path, "".join(lines))
    atomic_files.write_text(system_file, "".join(system_lines))

    result = ArchiveDayResult(
        day=day,
        collector=collector,
        trades_total=len(ts),
        trades_written=len(kept),
        trades_missing=int(missing.sum()),
        system_events=len(system_lines),
        files=sorted(files) + [system_file],
        corrupt=corrupted,
        outages=[(o.start.strftime("%H:%M"), o.end.strftime("%H:%M")) for o in sorted(outages, key=lambda o: o.start)],
    )
    if truth is not None:
        _write_truth(truth, sim, order, rx, ~missing, seq, result)
    return result


def _corrupt(files, count, rng, windows, kept, rx, root, collector, sim) -> list[dict]:
    """Add `count` bad lines to the trade files; return where each went (file, 1-based line)."""
    if count == 0 or not files:
        return []
    kinds = [CORRUPT_KINDS[i % len(CORRUPT_KINDS)] for i in range(count)]
    paths = sorted(files)
    # Torn tails end a file: first the files a crash (outage start) cut off, then others at random.
    crash_files = []
    for start, _ in windows:
        before = kept[rx[kept] < start]
        if len(before):
            hour = (int(rx[before[-1]]) // US + KST_OFFSET_S) // 3600
            path = trades_path(root, collector, datetime.fromtimestamp(hour * 3600 - KST_OFFSET_S, SEOUL))
            if path in files and path not in crash_files:
                crash_files.append(path)
    others = [p for p in paths if p not in crash_files]
    torn_files = crash_files + [others[i] for i in rng.permutation(len(others))]
    torn_targets = torn_files[: kinds.count("torn_tail")]
    extra_torn = kinds.count("torn_tail") - len(torn_targets)
    inner = [k for k in kinds if k != "torn_tail"] + ["bad_json"] * extra_torn  # more tails than files

    insertions: dict[Path, list[tuple[int, str, str]]] = {}  # file -> (insert before index, kind, text)
    sizes = np.array([len(files[p]) for p in paths])
    slots = np.sort(rng.choice(int(sizes.sum()), size=len(inner), replace=False)) if inner else []
    bounds = np.cumsum(sizes)
    final_cum = int(sim.cum.max()) if len(sim.cum) else 0
    for n, (kind, slot) in enumerate(zip(inner, [int(x) for x in slots], strict=True)):
        file_index = int(np.searchsorted(bounds, slot, side="right"))
        path = paths[file_index]
        line_index = slot - (int(bounds[file_index - 1]) if file_index else 0)
        record = json.loads(files[path][line_index])
        insertions.setdefault(path, []).append((line_index + 1, kind, _bad_line(kind, record, n, final_cum, sim) + "\n"))
    for n, path in enumerate(torn_targets):
        last = files[path][-1]
        cut = max(10, int(len(last) * (0.3 + 0.04 * ((n * 7919) % 10))))
        insertions.setdefault(path, []).append((len(files[path]), "torn_tail", last[:cut].rstrip("\n")))

    report = []
    for path in paths:
        items = sorted(insertions.get(path, []), key=lambda item: (item[0], item[1] == "torn_tail"))
        for k, (index, kind, _) in enumerate(items):
            report.append({"kind": kind, "file": str(path), "line": index + k + 1})
        for index, _, text in reversed(items):  # from the back, so earlier indices stay valid
            files[path].insert(index, text)
    return report


def _bad_line(kind: str, record: dict, n: int, final_cum: int, sim: SimDay) -> str:
    bad = dict(record)
    if kind == "bad_json":
        return json.dumps(bad, separators=(",", ":")).replace(',"qty":', ',"qty"', 1)
    if kind == "wrong_type":
        field_name = ("px", "qty", "ts")[n % 3]
        bad[field_name] = str(bad[field_name]) if field_name != "qty" else bad[field_name] + 0.5
    elif kind == "bad_symbol":
        bad["sym"] = (bad["sym"][-4:], bad["sym"].lower().replace("0", "o"), bad["sym"] + "X")[n % 3]
    elif kind == "out_of_session":
        # After the close (or before the pre-open): a trade that cannot have happened. Its cum is
        # beyond any real trade's, so it can never be mistaken for (or deduplicated with) one.
        offset = (20 * 60 + n) * US
        bad["ts"] = sim.close_us + offset if n % 2 == 0 else sim.open_us - 3600 * US - offset
        bad["cum"] = final_cum + 1_000 + n
    return json.dumps(bad, separators=(",", ":"))


def _system_lines(collector, up_us, down_us, windows, rx_kept, seq_kept) -> list[str]:
    events: list[tuple[int, str, dict | None]] = [(up_us, "UP", {"reason": "start"})]
    down_windows = [(max(s, up_us), min(e, down_us)) for s, e in windows if e > up_us and s < down_us]
    for start, end in down_windows:
        events.append((start, "DOWN", {"reason": "outage (simulated crash)"}))
        events.append((end, "UP", {"reason": "restart"}))
    beat = np.arange(up_us + HEARTBEAT_EVERY_S * US, down_us, HEARTBEAT_EVERY_S * US)
    alive = np.ones(len(beat), dtype=bool)
    for start, end in down_windows:
        alive &= ~((beat >= start) & (beat < end))
    received = np.searchsorted(rx_kept, beat[alive], side="right")
    for at, count in zip(beat[alive].tolist(), received.tolist(), strict=True):
        last_seq = int(seq_kept[count - 1]) if count else 0
        events.append((at, "HEARTBEAT", {"seq": last_seq}))
    events.append((down_us, "DOWN", {"reason": "session closed"}))
    order = {"DOWN": 0, "UP": 1, "HEARTBEAT": 2}
    events.sort(key=lambda e: (e[0], order[e[1]]))
    return [SystemRecord(event, at, collector, detail).to_json_line() for at, event, detail in events]


def _write_truth(path: Path, sim: SimDay, order, rx, archived, seq, result: ArchiveDayResult) -> None:
    import polars as pl

    frame = sim.trades_frame().with_columns(
        pl.Series("rx", rx), pl.Series("archived", archived), pl.Series("seq", np.where(archived, seq, 0))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_files.replacing(path, durable=False) as handle:
        frame.write_parquet(handle)
    manifest = {**result.summary(), "corrupt_lines": result.corrupt, "files": [str(p) for p in result.files]}
    manifest_text = json.dumps(manifest, ensure_ascii=False, indent=1) + "\n"
    atomic_files.write_text(path.with_suffix(".manifest.json"), manifest_text)
