"""The reader's fast path agrees with the strict one line for line, and a day ingested twice is
written byte for byte the same."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.archive import fast_parse, reader
from stock_pipelines.archive.bars import minute_bars
from stock_pipelines.archive.ticks import TICKS_SCHEMA, DayIngest, day_files
from stock_pipelines.market import krx_calendar

from .conftest import DAY, seoul_us, session_trades, write_day

SESSION = krx_calendar().session(DAY)


def canonical(n: int, sym: str = "005930", **changes) -> bytes:
    """The writer's line (TradeRecord.to_json_line's keys, order and separators)."""
    record = {
        "src": "kis",
        "sym": sym,
        "ts": seoul_us(9, 0) + n * 1_000_000,
        "rx": seoul_us(9, 0) + n * 1_000_000 + 700,
        "px": 70_000 + n % 13,
        "qty": 1 + n % 5,
        "cum": 1000 + n,
        "seq": n + 1,
        "v": 1,
        **changes,
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


GOOD = canonical(0)[:-2].decode()  # '{"src":...,"v":1' without the closing brace and newline
# lines polars alone would get wrong, or that only the strict reader may judge
TRICKY = [
    (GOOD + ',"v":1}\n').encode(),  # duplicate key: polars keeps the first
    (GOOD + ',"px":5}\n').encode(),  # duplicate key with another value
    canonical(1, sym=593000),  # a number for a string field: polars makes it text
    canonical(2, sym=True),
    canonical(3, sym={"a": "b"}),
    canonical(4, sym=[1, 2]),
    canonical(5, src=7),
    canonical(6).replace(b'"sym":"005930"', b'"sym":"\\ud800AAAAA"'),  # polars decodes it to NUL
    canonical(7).replace(b'"v":1', b'"\\u0076":1'),  # an escaped key: valid, same value
    canonical(8).replace(b'"v":1', b'"v":1,"x":"y"'),  # an extra key: valid, ignored
    canonical(9).replace(b'"seq":10', b'"seq":-0'),  # -0 is a valid int 0
    canonical(10).replace(b",", b", "),  # whitespace: valid
    canonical(11).replace(b"}", b" " * 70_000 + b"}"),  # valid JSON, but longer than MAX_LINE_BYTES
    canonical(12).replace(b"\n", b"\r\n"),
    canonical(13, px="100"),
    canonical(14, px=1.5),
    canonical(15, px=100.0),
    canonical(16, qty=True),
    canonical(17, cum=10**30),
    canonical(18, cum=-(2**63) - 1),
    canonical(19, ts=None),
    canonical(20, src="kis\u00e9"),
    canonical(21).replace(b'"kis"', b'"k\xff\xfe"'),
    canonical(22).replace(b'"src":"kis",', b""),  # a missing field
    canonical(23).replace(b"}\n", b"}{}\n"),
    canonical(24).replace(b"{", b"[", 1),
    b"\n",
    b"null\n",
    b"{}\n",
    b"not json\n",
    b'{"src":"kis","sym":"005930","ts":1,"rx":1,"px":NaN,"qty":1,"cum":1,"seq":1,"v":1}\n',
    b'{"src":"kis","sym":"005930","ts":1,"rx":1,"px":01,"qty":1,"cum":1,"seq":1,"v":1}\n',
    b'{"src":"kis","sym":"005930","ts":1,"rx":1,"px":1,"qty":1,"cum":1,"seq":1,"v":1,}\n',
    # quotes and colons balanced across two lines: one short of each, one with one extra
    canonical(25, sym=593001).replace(b'"v":1', b'"v":1,"k":1'),
    canonical(26).replace(b'"v":1', b'"v":1,"a":"b"').replace(b'"seq":27,', b""),
]


def parsed(data: bytes, fast: bool) -> tuple[list[tuple], list[tuple]]:
    result = reader.parse_bytes(data, fast=fast)
    rows = result.rows.sort("line").rows()
    rejects = [(r.line, r.reason, r.raw, r.offset, r.length) for r in result.rejects]
    assert len(rows) + len(rejects) == result.lines == data.count(b"\n") + (not data.endswith(b"\n"))
    return rows, rejects


def fast_rows(monkeypatch) -> list[int]:
    """Counts the rows the fast path accepts (to see it was used, not bypassed)."""
    accepted: list[int] = []
    rows_pass = fast_parse.rows_pass

    def counting(frame, lines):
        ok = rows_pass(frame, lines)
        accepted.append(frame.height if ok else 0)
        return ok

    monkeypatch.setattr(fast_parse, "rows_pass", counting)
    return accepted


@pytest.mark.parametrize("tricky", TRICKY, ids=[f"{i}" for i in range(len(TRICKY))])
def test_a_tricky_line_among_good_ones_gets_the_strict_verdict(tricky, monkeypatch):
    before, after = b"".join(canonical(n) for n in range(40)), b"".join(canonical(n) for n in range(40, 60))
    data = before + tricky + after
    assert parsed(data, fast=True) == parsed(data, fast=False)
    accepted = fast_rows(monkeypatch)
    clean = before + after
    assert parsed(clean, fast=True) == parsed(clean, fast=False)
    assert accepted == [60]  # without the tricky line, the block went the fast way


def test_a_mixed_corpus_in_small_blocks_parses_the_same_both_ways(monkeypatch):
    """Thousands of good lines with every tricky line spread through them, cut into blocks of
    2 KiB: clean blocks go fast, dirty ones strict, and the result is the strict reader's."""
    monkeypatch.setattr(fast_parse, "BLOCK_BYTES", 2048)
    rng = random.Random(5)
    lines = [canonical(n, sym=rng.choice(["005930", "000660", "0088M0"])) for n in range(3000)]
    for tricky in TRICKY:
        lines.insert(rng.randrange(len(lines)), tricky)
    data = b"".join(lines) + b'{"src":"kis","sym"'  # and an unterminated last line
    accepted = fast_rows(monkeypatch)
    fast, strict = parsed(data, fast=True), parsed(data, fast=False)
    assert fast == strict
    assert len(fast[0]) > 3000 and {r[1] for r in fast[1]} >= {
        "duplicate_key",
        "wrong_type",
        "non_utf8",
        "line_too_long",
        "empty_line",
        "number_out_of_range",
        "invalid_json",
        "not_object",
        "unterminated_line",
    }
    assert sum(accepted) > 2000  # most lines still took the fast path


def write_outputs(archive, data_dir) -> list[bytes]:
    """What raw_ticks and tick_minute_bars write for the day, as bytes."""
    run = DayIngest(day_files([(archive, "")], DAY), SESSION, target_batch_rows=50)
    ticks_path, _ = lake.write_partition_batches(run.batches(), TICKS_SCHEMA, "raw_ticks", DAY, data_dir)
    quarantine_path = lake.write_partition(run.quarantine, "raw_ticks_quarantine", DAY, data_dir)
    bars = minute_bars(lake.scan_partition("raw_ticks", DAY, data_dir), SESSION, presorted=True)
    bars_path = lake.write_partition(bars, "tick_minute_bars", DAY, data_dir)
    return [path.read_bytes() for path in (ticks_path, quarantine_path, bars_path)]


def test_the_same_day_twice_gives_byte_identical_partitions(archive_env, tmp_path):
    for n, symbol in enumerate(("005930", "000660", "035720", "0088M0")):
        write_day(archive_env, "kis-1", session_trades(symbol, 60 + n, start=(9, n)))
        write_day(
            archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades(symbol, 25, start=(9, n))]
        )
    day_dir = archive_env / "kis-1" / "trades" / DAY.strftime("%Y%m%d")
    with next(day_dir.glob("09_00.jsonl")).open("ab") as handle:
        handle.write(b"".join(TRICKY[:6]) + canonical(99, ts=seoul_us(15, 25)))
    first = write_outputs(archive_env, tmp_path / "first")
    second = write_outputs(archive_env, tmp_path / "second")
    assert first == second
    ticks = pl.read_parquet(tmp_path / "first" / "raw_ticks" / f"date={DAY}" / "part-0.parquet")
    assert ticks.height == 60 + 61 + 62 + 63  # the kiwoom replays are duplicates of kis trades
    quarantine = pl.read_parquet(
        tmp_path / "first" / "raw_ticks_quarantine" / f"date={DAY}" / "part-0.parquet"
    )
    assert quarantine.height == 7


def test_a_file_read_in_small_pieces_parses_as_one(tmp_path, monkeypatch):
    """Pieces end at newlines; a line longer than a piece, and an unterminated tail, still count once."""
    lines = [canonical(n) for n in range(200)]
    lines[50] = canonical(50).replace(b"}", b" " * 3000 + b"}")  # longer than a piece
    lines[120] = b"junk\n"
    path = tmp_path / "09_00.jsonl"
    path.write_bytes(b"".join(lines) + b'{"src"')
    whole = reader.parse_file(path)
    monkeypatch.setattr(reader, "READ_BYTES", 1000)
    monkeypatch.setattr(fast_parse, "BLOCK_BYTES", 400)
    pieces = reader.parse_file(path)
    assert pieces.rows.equals(whole.rows) and pieces.rows.height == 199
    assert pieces.rejects == whole.rejects and [r.reason for r in whole.rejects] == [
        "invalid_json",
        "unterminated_line",
    ]
    assert (pieces.lines, pieces.size) == (whole.lines, whole.size) == (201, path.stat().st_size)


def test_the_spill_is_removed_after_the_day_and_when_a_run_is_abandoned(archive_env):
    for n, symbol in enumerate(("005930", "000660", "035720")):
        write_day(archive_env, "kis-1", session_trades(symbol, 20 + n, start=(9, n)))
    run = DayIngest(day_files([(archive_env, "")], DAY), SESSION, target_batch_rows=10)
    spill_dir = run._spill._dir
    assert spill_dir is not None and any(spill_dir.iterdir())
    assert sum(batch.height for batch in run.batches()) == 63
    assert not spill_dir.exists()
    abandoned = DayIngest(day_files([(archive_env, "")], DAY), SESSION, target_batch_rows=10)
    batches = abandoned.batches()
    next(batches)
    spill_dir = abandoned._spill._dir
    batches.close()  # a lake writer that failed mid-day stops consuming
    assert not spill_dir.exists() and abandoned.quarantine is None


def test_rows_the_fast_path_proved_still_meet_every_value_rule(tmp_path, monkeypatch):
    """Validation skips the field and string rules for a piece the fast path proved (all its
    rows passed `rows_pass`); the value rules still fire there, and a piece with a bad symbol
    is not proven, so the day's quarantine is the one the strict reader gives."""
    value_faults = [
        canonical(1, v=2),
        canonical(2, px=0),
        canonical(3, qty=-1),
        canonical(4, qty=5, cum=4),
        canonical(5, ts=seoul_us(8, 0)),
        canonical(6, ts=seoul_us(15, 25)),
    ]
    clean = b"".join(canonical(n) for n in range(10, 40))
    day_dir = tmp_path / "kis-1" / "trades" / DAY.strftime("%Y%m%d")
    day_dir.mkdir(parents=True)
    (day_dir / "09_00.jsonl").write_bytes(clean + b"".join(value_faults))
    (day_dir / "10_00.jsonl").write_bytes(canonical(50, sym="00593a") + canonical(51, sym="000660"))
    assert reader.parse_file(day_dir / "09_00.jsonl").proven
    assert not reader.parse_file(day_dir / "10_00.jsonl").proven
    assert not reader.parse_bytes(clean, fast=False).proven

    def quarantine() -> list[tuple]:
        run = DayIngest(day_files([(tmp_path, "")], DAY), SESSION)
        assert sum(batch.height for batch in run.batches()) == 31
        return run.quarantine.select("file", "line", "reason").rows()

    fast = quarantine()
    monkeypatch.setattr(fast_parse, "counts_may_pass", lambda counts: False)  # every block strict
    assert fast == quarantine()
    assert {reason for _, _, reason in fast} == {
        "unknown_version",
        "nonpositive_price",
        "nonpositive_qty",
        "bad_cum",
        "out_of_session",
        "in_closing_auction",
        "bad_symbol",
    }
