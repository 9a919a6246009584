"""archive.ticks: every line ends in raw_ticks, as a duplicate, or in quarantine with its reason."""

from __future__ import annotations

import json

import polars as pl
import pytest

from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.archive.layout import trades_path
from stock_pipelines.archive.reader import RAW_EXCERPT_BYTES
from stock_pipelines.archive.ticks import ingest_day, quarantined_line
from stock_pipelines.market import krx_calendar

from .conftest import DAY, seoul_us, session_trades, write_day

SESSION = krx_calendar().session(DAY)
GOOD = {
    "v": 1,
    "src": "kis",
    "sym": "000660",
    "ts": seoul_us(10, 0),
    "rx": seoul_us(10, 0, 1),
    "px": 100,
    "qty": 1,
    "cum": 1,
    "seq": 1,
}


def line(**changes) -> bytes:
    record = {**GOOD, **changes}
    return (json.dumps({k: v for k, v in record.items() if v is not ...}) + "\n").encode()


def ingest(root):
    return ingest_day([(root, "")], DAY, SESSION)


def the_file(root, collector="kis-1", hour=9):
    return next((root / collector / "trades" / DAY.strftime("%Y%m%d")).glob(f"{hour:02d}_00.jsonl"))


def test_clean_day_from_the_writer_is_kept_whole_and_sorted(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 40) + session_trades("000660", 30, start=(9, 1)))
    result = ingest(archive_env)
    s = result.stats
    assert (s.lines_in, s.rows_kept, s.duplicates, s.quarantined) == (70, 70, 0, 0)
    assert result.quarantine.height == 0
    ticks = result.ticks
    assert ticks.columns == [
        "source",
        "symbol",
        "ts",
        "rx",
        "price",
        "qty",
        "cum",
        "seq",
        "collector",
        "file",
        "line",
    ]
    assert ticks.schema["ts"] == pl.Datetime("us", "UTC")
    assert ticks["symbol"].to_list() == ["000660"] * 30 + ["005930"] * 40
    assert ticks.filter(pl.col("symbol") == "005930")["cum"].is_sorted()
    assert set(ticks["collector"]) == {"kis-1"}
    assert ticks["file"][0].startswith("kis-1/trades/20261120/")
    assert sorted(ticks["seq"]) == list(range(1, 71))


BAD_LINES = [
    (b"[1, 2, 3]\n", "not_object"),
    (b'"just a string"\n', "not_object"),
    (b"{not json\n", "invalid_json"),
    (b'{"v":1,"src":"kis","sym":"005930"}{"v":1}\n', "invalid_json"),
    (b"\n", "empty_line"),
    (
        b'{"v":1,"src":"k\xff\xfeis","sym":"005930","ts":1,"rx":1,"px":1,"qty":1,"cum":1,"seq":1}\n',
        "non_utf8",
    ),
    (b'{"v":1,"src":"kis","sym":"\\ud800AAAAA","ts":1,"rx":1,"px":1,"qty":1,"cum":1,"seq":1}\n', "non_utf8"),
    (line(px="100"), "wrong_type"),
    (line(px=1.5), "wrong_type"),
    (line(qty=True), "wrong_type"),
    (line(sym=5930), "wrong_type"),
    (line(cum=10**30), "number_out_of_range"),
    (b'{"v":1,"v":1}\n', "duplicate_key"),
    (line(v=2), "unknown_version"),
    (line(v=...), "unknown_version"),
    (line(rx=...), "missing_field"),
    (line(sym=None), "missing_field"),
    (line(src="ebest"), "bad_source"),
    (line(sym="../../x"), "bad_symbol"),
    (line(sym="00593"), "bad_symbol"),
    (line(sym="005930/"), "bad_symbol"),
    (line(px=0), "nonpositive_price"),
    (line(px=-5), "nonpositive_price"),
    (line(qty=0), "nonpositive_qty"),
    (line(cum=0, qty=1), "bad_cum"),
    (line(ts=seoul_us(8, 30)), "out_of_session"),
    (line(ts=seoul_us(15, 31)), "out_of_session"),
    (line(ts=seoul_us(15, 25)), "in_closing_auction"),
]


@pytest.mark.parametrize("raw,reason", BAD_LINES, ids=[f"{i}-{r}" for i, (_, r) in enumerate(BAD_LINES)])
def test_each_bad_line_is_quarantined_with_its_reason_and_raw_text(archive_env, raw, reason):
    write_day(archive_env, "kis-1", session_trades("005930", 20))
    path = the_file(archive_env)
    with path.open("ab") as handle:
        handle.write(raw)
    write_day(archive_env, "kis-1", session_trades("035720", 5, start=(9, 40)))  # more good lines after it
    result = ingest(archive_env)
    s = result.stats
    assert s.lines_in == 26
    assert (s.quarantined, s.quarantined_by_reason) == (1, {reason: 1})
    assert s.rows_kept + s.duplicates == 25
    row = result.quarantine.row(0, named=True)
    assert (row["file"], row["line"], row["reason"]) == ("kis-1/trades/20261120/09_00.jsonl", 21, reason)
    assert row["raw"] == raw.rstrip(b"\n").decode("utf-8", errors="backslashreplace")


def test_a_five_megabyte_garbage_line_keeps_an_excerpt_and_where_to_read_it_whole(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10))
    path = the_file(archive_env)
    garbage = b'{"v":1,"pad":"' + bytes(range(32, 127)) * 55_000 + b'"}'  # 5.2 MB, no newline inside
    offset = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(garbage + b"\n")
        handle.write(line(cum=100, qty=1))
        handle.write(b"not json\n")
        handle.write(b'{"v":1,"src":"kis","sym":"0059')  # unterminated
    result = ingest(archive_env)
    assert result.stats.quarantined_by_reason == {"invalid_json": 1, "line_too_long": 1, "unterminated_line": 1}
    assert result.stats.rows_kept == 11
    rows = {row["reason"]: row for row in result.quarantine.iter_rows(named=True)}
    long = rows["line_too_long"]
    assert (long["line"], long["offset"], long["length"]) == (11, offset, len(garbage))
    assert long["raw"] == garbage[:RAW_EXCERPT_BYTES].decode() and RAW_EXCERPT_BYTES <= 4096
    assert max(len(row["raw"]) for row in rows.values()) <= RAW_EXCERPT_BYTES
    roots = [(archive_env, "")]
    for row in rows.values():  # each line reads back whole from the archive
        whole = quarantined_line(roots, row["file"], row["offset"], row["length"])
        assert whole.decode("utf-8", errors="backslashreplace").startswith(row["raw"])
    assert quarantined_line(roots, long["file"], long["offset"], long["length"]) == garbage
    assert quarantined_line(roots, *[rows["invalid_json"][k] for k in ("file", "offset", "length")]) == b"not json"
    unterminated = rows["unterminated_line"]
    assert quarantined_line(roots, unterminated["file"], unterminated["offset"], unterminated["length"]) == (
        b'{"v":1,"src":"kis","sym":"0059'
    )


def test_a_rejected_valid_json_line_and_a_torn_tail_read_back_from_offset_and_length(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10))
    bad = line(cum=500, qty=1, ts=seoul_us(8, 30))  # out of session: rejected after parsing
    with the_file(archive_env).open("ab") as handle:
        handle.write(bad)
    torn = archive_env / "kis-1" / "quarantine" / DAY.strftime("%Y%m%d") / "trades-09_00.jsonl.77.torn"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"x" * 3000)
    result = ingest(archive_env)
    rows = {row["reason"]: row for row in result.quarantine.iter_rows(named=True)}
    assert set(rows) == {"out_of_session", "torn_tail"}
    roots = [(archive_env, "")]
    session = rows["out_of_session"]
    assert quarantined_line(roots, session["file"], session["offset"], session["length"]) == bad.rstrip(b"\n")
    tail = rows["torn_tail"]
    assert (tail["offset"], tail["length"], len(tail["raw"])) == (0, 3000, RAW_EXCERPT_BYTES)
    assert quarantined_line(roots, tail["file"], tail["offset"], tail["length"]) == b"x" * 3000


def test_unterminated_last_line_is_quarantined(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10))
    with the_file(archive_env).open("ab") as handle:
        handle.write(b'{"v":1,"src":"kis","sym":"0059')
    result = ingest(archive_env)
    assert result.stats.quarantined_by_reason == {"unterminated_line": 1}
    assert result.quarantine["line"].to_list() == [11]


def test_many_bad_lines_spread_through_a_large_file(archive_env):
    trades = session_trades("005930", 9000, step_s=0.3)
    write_day(archive_env, "kis-1", trades)
    path = the_file(archive_env)
    lines = path.read_bytes().splitlines(keepends=True)
    for index in (5, 4100, 8999):
        lines[index] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    result = ingest(archive_env)
    assert result.stats.quarantined_by_reason == {"invalid_json": 3}
    assert result.quarantine["line"].to_list() == [6, 4101, 9000]
    assert result.stats.rows_kept == len(lines) - 3


def test_empty_files_and_missing_day_directory_give_an_empty_result(archive_env):
    assert ingest(archive_env).stats.lines_in == 0  # no directory at all
    empty = trades_path(archive_env, "kis-1", SESSION.open)
    empty.parent.mkdir(parents=True)
    empty.touch()
    result = ingest(archive_env)
    assert (result.stats.files, result.stats.lines_in, result.ticks.height, result.quarantine.height) == (
        1,
        0,
        0,
        0,
    )
    assert result.ticks.schema["ts"] == pl.Datetime("us", "UTC")


def test_replay_and_cross_broker_duplicates_are_kept_once_preferring_kis(archive_env):
    trades = session_trades("005930", 20)
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in trades], rx_delay_us=500)
    write_day(archive_env, "kis-1", trades[:12], rx_delay_us=2_000)
    write_day(archive_env, "kis-2", trades[8:], rx_delay_us=3_000)  # a restart replays 8..11
    result = ingest(archive_env)
    s = result.stats
    assert s.rows_kept == 20
    assert (s.duplicates, s.duplicates_same_source, s.duplicates_cross_source) == (24, 4, 20)
    assert s.lines_in == s.rows_kept + s.duplicates + s.quarantined
    assert set(result.ticks["source"]) == {"kis"}
    # the replayed trades keep the earliest receive time: the first collector's
    replayed = result.ticks.filter(pl.col("cum").is_in([t[5] for t in trades[8:12]]))
    assert set(replayed["collector"]) == {"kis-1"}
    assert result.ticks.select(pl.struct("symbol", "cum").is_unique().all()).item()


def test_a_duplicated_file_is_counted_as_duplicates(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 15))
    original = the_file(archive_env)
    (original.parent / "09_00 (copy).jsonl").write_bytes(original.read_bytes())
    result = ingest(archive_env)
    assert (result.stats.rows_kept, result.stats.duplicates, result.stats.duplicates_same_source) == (
        15,
        15,
        15,
    )
    assert set(result.ticks["file"]) == {"kis-1/trades/20261120/09_00 (copy).jsonl"} or set(
        result.ticks["file"]
    ) == {"kis-1/trades/20261120/09_00.jsonl"}


def test_decreasing_cumulative_volume_is_quarantined(archive_env):
    trades = session_trades("005930", 10)
    bad = ("kis", "005930", trades[2][2] - 1_000_000, 70_000, 10, trades[6][5] + 1)  # cum ahead of its time
    write_day(archive_env, "kis-1", trades[:3] + [bad] + trades[3:])
    result = ingest(archive_env)
    assert result.stats.quarantined_by_reason == {"decreasing_cum": 1}
    assert json.loads(result.quarantine["raw"][0])["cum"] == bad[5]
    assert result.stats.rows_kept == 10


def test_session_edges_tolerance_and_the_closing_print(archive_env):
    trades = [
        ("kis", "005930", seoul_us(8, 59, 57), 100, 1, 1),  # 3 s early: inside the 5 s tolerance
        ("kis", "005930", seoul_us(8, 59, 50), 100, 1, 2),  # 10 s early
        ("kis", "005930", seoul_us(15, 19, 59), 100, 1, 3),  # last continuous second
        ("kis", "005930", seoul_us(15, 20, 0), 100, 1, 4),  # closing auction: no continuous trades
        ("kis", "005930", seoul_us(15, 30, 0), 100, 1, 5),  # the closing print
        ("kis", "005930", seoul_us(15, 30, 3), 100, 1, 6),  # print stamped 3 s late
        ("kis", "005930", seoul_us(15, 31, 0), 100, 1, 7),
    ]
    write_day(archive_env, "kis-1", trades)
    result = ingest(archive_env)
    assert result.ticks["cum"].to_list() == [1, 3, 5, 6]
    by_cum = {
        json.loads(raw)["cum"]: reason
        for raw, reason in result.quarantine.select("raw", "reason").iter_rows()
    }
    assert by_cum == {2: "out_of_session", 4: "in_closing_auction", 7: "out_of_session"}


def test_special_session_uses_the_calendar(archive_env):
    csat = krx_calendar().session(DAY.replace(day=19))  # CSAT day: 10:00-16:30
    trades = [
        ("kis", "005930", seoul_us(9, 30, day=csat.day), 100, 1, 1),
        ("kis", "005930", seoul_us(10, 30, day=csat.day), 100, 1, 2),
        ("kis", "005930", seoul_us(16, 30, day=csat.day), 100, 1, 3),
    ]
    write_day(archive_env, "kis-1", trades)
    result = ingest_day([(archive_env, "")], csat.day, csat)
    assert result.ticks["cum"].to_list() == [2, 3]
    assert result.stats.quarantined_by_reason == {"out_of_session": 1}


def test_fallback_root_files_are_read_and_labelled(archive_env, tmp_path):
    fallback = tmp_path / "fallback"
    write_day(archive_env, "kis-1", session_trades("005930", 5))
    write_day(fallback, "kis-1", session_trades("035720", 5, start=(11, 0)))
    config = ArchiveConfig.from_env(
        {"STOCK_PIPELINES_ARCHIVE_DIR": str(archive_env), "STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR": str(fallback)}
    )
    result = ingest_day(config.roots(), DAY, SESSION)
    assert result.stats.files == 2
    assert result.stats.rows_kept + result.stats.duplicates == 10
    assert any(f.startswith("@fallback/kis-1/") for f in result.ticks["file"].unique())


def test_rerun_gives_identical_frames(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 30))
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades("005930", 40)])
    with the_file(archive_env).open("ab") as handle:
        handle.write(b"junk\n")
    first, second = ingest(archive_env), ingest(archive_env)
    assert first.ticks.equals(second.ticks)
    assert first.quarantine.equals(second.quarantine)


@pytest.mark.parametrize("spill_rows", [1, 30, 2_000_000])  # a spill file per piece, some, one
def test_streaming_in_small_symbol_ranges_gives_the_same_result(archive_env, spill_rows):
    from stock_pipelines.archive.ticks import DayIngest, day_files

    for n, symbol in enumerate(("005930", "000660", "035720", "0088M0", "373220")):
        write_day(archive_env, "kis-1", session_trades(symbol, 12 + n, start=(9, n)))
        write_day(
            archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades(symbol, 5, start=(9, n))]
        )
    with the_file(archive_env).open("ab") as handle:
        handle.write(b"junk\n")
    whole = ingest(archive_env)
    run = DayIngest(day_files([(archive_env, "")], DAY), SESSION, target_batch_rows=7, spill_rows=spill_rows)
    # the two collectors' files, 90 valid rows: gathered into spill files of at least spill_rows
    assert len(run._spill._pieces) == {1: 2, 30: 2, 2_000_000: 1}[spill_rows]
    batches = list(run.batches())
    assert len(batches) >= 3
    assert pl.concat(batches).equals(whole.ticks)
    assert run.quarantine.equals(whole.quarantine) and run.stats == whole.stats


@pytest.mark.parametrize("spill_rows", [1, 2_000_000])
def test_a_symbol_larger_than_a_range_is_cut_between_cum_values_with_the_same_result(archive_env, spill_rows):
    from stock_pipelines.archive.ticks import DayIngest, day_files

    trades = session_trades("005930", 60)
    late = ("kis", "005930", trades[30][2] - 1_000_000, 70_000, 10, trades[33][5] + 1)  # decreasing_cum
    write_day(archive_env, "kis-1", trades[:31] + [late] + trades[31:])
    # the same trades from a second broker and a replay: duplicates on every side of every cut
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in trades[10:50]], rx_delay_us=500)
    write_day(archive_env, "kis-2", trades[25:40], rx_delay_us=3_000)
    write_day(archive_env, "kis-3", session_trades("000660", 5))
    whole = ingest(archive_env)
    assert whole.stats.quarantined_by_reason == {"decreasing_cum": 1}
    assert whole.stats.rows_kept == 65

    run = DayIngest(day_files([(archive_env, "")], DAY), SESSION, target_batch_rows=8, spill_rows=spill_rows)
    batches = list(run.batches())
    samsung = [b for b in batches if set(b["symbol"]) == {"005930"}]
    assert len(samsung) >= 6  # 60 kept rows of one symbol in ranges of about 8 (+ duplicates)
    assert max(b.height for b in batches) <= 20
    assert pl.concat(batches).equals(whole.ticks)
    assert run.quarantine.equals(whole.quarantine) and run.stats == whole.stats
