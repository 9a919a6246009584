"""`stock-pipelines sim day`: a day archived as a collector would have, outages and corruption included."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from stock_pipelines.archive.record import TradeRecord, is_valid_symbol
from stock_pipelines.cli import main
from stock_pipelines.market import SEOUL

US = 1_000_000
OPEN_US = int(datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL).timestamp()) * US
CLOSE_US = int(datetime(2026, 11, 20, 15, 30, tzinfo=SEOUL).timestamp()) * US
OUTAGE = (int(datetime(2026, 11, 20, 10, 15, tzinfo=SEOUL).timestamp()) * US,
          int(datetime(2026, 11, 20, 10, 40, tzinfo=SEOUL).timestamp()) * US)
ARGS = ["sim", "day", "--date", "2026-11-20", "--seed", "4", "--symbols", "12", "--activity", "0.25",
        "--outage", "10:15-10:40"]


def _run(capsys, out: Path, *extra: str) -> dict:
    assert main([*ARGS, "--out", str(out), *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    truth = tmp_path_factory.mktemp("truth") / "truth.parquet"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    buffer = io.StringIO()
    capture.setattr(sys, "stdout", buffer)
    try:
        assert main([*ARGS, "--out", str(root), "--corrupt", "10", "--truth", str(truth)]) == 0
    finally:
        capture.undo()
    summary = json.loads(buffer.getvalue())
    manifest = json.loads(truth.with_suffix(".manifest.json").read_text())
    return root, truth, summary, manifest


def _valid_trades(root: Path, manifest: dict) -> list[tuple[Path, int, str]]:
    bad = {(item["file"], item["line"]) for item in manifest["corrupt_lines"]}
    lines = []
    for path in sorted((root / "sim-kis-1" / "trades" / "20261120").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(keepends=True), start=1):
            if (str(path), number) not in bad:
                lines.append((path, number, line))
    return lines


def test_layout_and_lines_are_the_archive_contract(archived):
    root, _, summary, manifest = archived
    hours = sorted(p.name for p in (root / "sim-kis-1" / "trades" / "20261120").iterdir())
    assert hours == ["09_00.jsonl", "10_00.jsonl", "11_00.jsonl", "12_00.jsonl", "13_00.jsonl", "14_00.jsonl",
                     "15_00.jsonl"]
    assert (root / "sim-kis-1" / "system" / "20261120.jsonl").is_file()
    valid = _valid_trades(root, manifest)
    assert len(valid) == summary["trades_written"]
    for path, _, line in valid:
        record = TradeRecord(**{k: v for k, v in json.loads(line).items() if k != "v"})
        assert record.to_json_line() == line  # byte for byte what the real record writes
        assert record.rx >= record.ts and is_valid_symbol(record.sym)
        assert path.name == f"{(record.rx // US + 9 * 3600) // 3600 % 24:02d}_00.jsonl"  # Seoul hour of rx


def test_outage_trades_are_missing_and_match_the_truth(archived):
    root, truth_path, summary, manifest = archived
    truth = pl.read_parquet(truth_path)
    records = [json.loads(line) for _, _, line in _valid_trades(root, manifest)]
    archived_keys = {(r["sym"], r["cum"]) for r in records}
    assert archived_keys == set(truth.filter(pl.col("archived")).select("sym", "cum").iter_rows())
    missing = truth.filter(~pl.col("archived"))
    assert missing.height == summary["trades_missing"] > 0
    assert missing.filter(~((pl.col("ts").is_between(OUTAGE[0], OUTAGE[1], closed="left"))
                            | pl.col("rx").is_between(OUTAGE[0], OUTAGE[1], closed="left"))).height == 0
    assert not any(OUTAGE[0] <= r["ts"] < OUTAGE[1] for r in records)
    assert truth.height == summary["trades_total"] == summary["trades_written"] + summary["trades_missing"]


def test_sequence_restarts_after_the_outage(archived):
    root, _, _, manifest = archived
    records = sorted((json.loads(line) for _, _, line in _valid_trades(root, manifest)), key=lambda r: r["rx"])
    before = [r["seq"] for r in records if r["rx"] < OUTAGE[0]]
    after = [r["seq"] for r in records if r["rx"] >= OUTAGE[1]]
    assert before == list(range(1, len(before) + 1)) and after == list(range(1, len(after) + 1))


def test_system_stream_matches_the_outage(archived):
    root, *_ = archived
    events = [json.loads(line) for line in (root / "sim-kis-1" / "system" / "20261120.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "UP" and kinds[-1] == "DOWN" and set(kinds) == {"UP", "DOWN", "HEARTBEAT"}
    assert [(e["event"], e["at"]) for e in events if e["event"] != "HEARTBEAT"][1:3] == [("DOWN", OUTAGE[0]), ("UP", OUTAGE[1])]
    beats = [e["at"] for e in events if e["event"] == "HEARTBEAT"]
    assert not any(OUTAGE[0] <= at < OUTAGE[1] for at in beats)
    gaps = {b - a for a, b in zip(beats, beats[1:], strict=False)}
    assert min(gaps) == 5 * US and max(gaps) > (OUTAGE[1] - OUTAGE[0])
    assert all(e["collector"] == "sim-kis-1" and e["v"] == 1 for e in events)


def test_corrupted_lines_are_the_kinds_asked_for(archived):
    _, _, summary, manifest = archived
    items = manifest["corrupt_lines"]
    assert len(items) == 10 and summary["corrupt"] == {"torn_tail": 2, "bad_json": 2, "wrong_type": 2,
                                                        "bad_symbol": 2, "out_of_session": 2}
    for item in items:
        lines = Path(item["file"]).read_text().splitlines(keepends=True)
        line = lines[item["line"] - 1]
        if item["kind"] == "torn_tail":
            assert item["line"] == len(lines) and not line.endswith("\n")
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        if item["kind"] == "bad_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        record = json.loads(line)
        if item["kind"] == "wrong_type":
            assert any(not isinstance(record[k], int) for k in ("ts", "px", "qty"))
        elif item["kind"] == "bad_symbol":
            assert not is_valid_symbol(record["sym"])
        else:
            assert not OPEN_US <= record["ts"] <= CLOSE_US
    crash_file = datetime.fromtimestamp(OUTAGE[0] / US, SEOUL).strftime("%H_00.jsonl")
    torn = [Path(i["file"]).name for i in items if i["kind"] == "torn_tail"]
    assert crash_file in torn  # the crash before the outage left a torn tail


def test_same_seed_same_archive_byte_for_byte(tmp_path, capsys):
    first = _run(capsys, tmp_path / "a", "--corrupt", "3")
    second = _run(capsys, tmp_path / "b", "--corrupt", "3")
    assert first["trades_written"] == second["trades_written"]
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jsonl"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jsonl"))
    assert files_a == files_b
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-11-21"], "2026-11-21 is not a KRX trading day"),
        (["--outage", "10:40-10:15"], "ends before it starts"),
        (["--outage", "noon"], "is not HH:MM-HH:MM"),
        (["--corrupt", "-1"], "argument --corrupt: must be 0..1000000, not -1"),
        (["--collector", "../evil"], "collector id"),
        (["--truth", "TRUTH_IN_ARCHIVE"], "inside the archive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    args = [str(tmp_path / "truth.parquet") if a == "TRUTH_IN_ARCHIVE" else a for a in args]
    assert main(["sim", "day", "--date", "2026-11-20", "--symbols", "2", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.rglob("*.jsonl"))
