from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from stock_pipelines.gaps import (
    GapKind,
    gaps_frame,
    minutes_lost,
    sequence_gap_frame,
    sequence_gaps,
    silence_gaps,
)
from stock_pipelines.heartbeat import UpInterval
from stock_pipelines.market import SEOUL

THU = date(2026, 3, 5)


def at(hhmmss: str, day: date = THU) -> datetime:
    h, m, s = ([int(p) for p in hhmmss.split(":")] + [0])[:3]
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=SEOUL)


def trade_frame(times: list[datetime]) -> pl.DataFrame:
    return pl.DataFrame({"ts": [t.astimezone(UTC) for t in times]}, schema={"ts": pl.Datetime("us", "UTC")})


def every(start: str, end: str, seconds: int = 10) -> list[datetime]:
    out, t = [], at(start)
    while t < at(end):
        out.append(t)
        t += timedelta(seconds=seconds)
    return out


ALL_DAY = [UpInterval(at("08:30"), at("16:00"))]


# -- silence -----------------------------------------------------------------------------------


def test_seven_quiet_minutes_in_continuous_trading_are_one_silence_gap():
    trades = trade_frame(every("09:00", "10:00") + every("10:07", "15:30"))
    gaps = silence_gaps(trades, ALL_DAY, THU, collector="c1", symbols=["005930", "000660"])
    assert [(g.kind, g.start, g.end, g.symbols) for g in gaps] == [
        (GapKind.SILENCE, at("09:59:50"), at("10:07"), ("005930", "000660"))
    ]
    assert "2 symbols" in gaps[0].reason


def test_four_quiet_minutes_and_a_quiet_closing_auction_are_normal():
    # last continuous print 15:16:50, then nothing until the 15:30 closing-auction print
    trades = trade_frame(every("09:00", "10:00") + every("10:04", "15:17") + [at("15:30")])
    assert silence_gaps(trades, ALL_DAY, THU, collector="c1") == []
    # but the same quiet from 15:14:50 is 5m10s of continuous trading: reported, ending at 15:20
    trades = trade_frame(every("09:00", "15:15") + [at("15:30")])
    gaps = silence_gaps(trades, ALL_DAY, THU, collector="c1")
    assert [(g.start, g.end) for g in gaps] == [(at("15:14:50"), at("15:20"))]


def test_silence_during_downtime_is_not_reported_twice():
    up = [UpInterval(at("08:30"), at("11:00")), UpInterval(at("11:30"), at("16:00"))]
    trades = trade_frame(every("09:00", "11:00") + every("11:30", "15:30"))
    assert silence_gaps(trades, up, THU, collector="c1") == []


def test_a_heartbeat_hiccup_does_not_split_a_silence():
    up = [UpInterval(at("08:30"), at("10:03")), UpInterval(at("10:03:10"), at("16:00"))]
    trades = trade_frame(every("09:00", "10:00") + every("10:06", "15:30"))
    gaps = silence_gaps(trades, up, THU, collector="c1")
    assert [(g.start, g.end) for g in gaps] == [(at("09:59:50"), at("10:06"))]


def test_silence_stops_at_now_and_naive_times_are_refused():
    trades = trade_frame(every("09:00", "10:00"))
    gaps = silence_gaps(trades, ALL_DAY, THU, collector="c1", now=at("10:30"))
    assert [(g.start, g.end) for g in gaps] == [(at("09:59:50"), at("10:30"))]
    naive = pl.DataFrame({"ts": [datetime(2026, 3, 5, 1)]})
    with pytest.raises(ValueError, match="timezone-aware"):
        silence_gaps(naive, ALL_DAY, THU, collector="c1")


@pytest.mark.parametrize("seed", range(30))
def test_quiet_stretches_match_a_sorted_reference(seed):
    import numpy as np

    from stock_pipelines.gaps.silence import quiet_stretches

    rng = np.random.default_rng(seed)
    a, b = 1_000_000_000, 1_000_000_000 + int(rng.integers(1, 4 * 3600)) * 1_000_000
    sizes = rng.integers(0, 60 if seed % 2 else 3000, int(rng.integers(1, 5)))  # sparse and dense
    clusters = [rng.integers(a - 10**8, b + 10**8, int(size)) for size in sizes]
    times = np.concatenate(clusters + [rng.integers(a, b, int(rng.integers(0, 3)))])
    min_len = int(rng.choice([60, 300, 301, 599])) * 1_000_000 + int(rng.integers(0, 999_999))
    points = np.concatenate(([a], np.sort(times[(times >= a) & (times < b)]), [b]))
    expected = [(int(points[i]), int(points[i + 1])) for i in np.flatnonzero(np.diff(points) >= min_len)]
    assert quiet_stretches(times, a, b, min_len) == expected


# -- sequence ----------------------------------------------------------------------------------


def ticks(rows: list[tuple[str, str, int, int]], collector: str = "c1") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": [at(r[1]).astimezone(UTC) for r in rows],
            "qty": [r[2] for r in rows],
            "cum": [r[3] for r in rows],
            "collector": [collector] * len(rows),
        },
        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "qty": pl.Int64, "cum": pl.Int64,
                "collector": pl.String},
    )


def test_a_cum_jump_is_a_gap_between_the_two_trades():
    frame = ticks([
        ("005930", "09:00", 10, 10),
        ("005930", "09:01", 5, 15),
        ("005930", "09:05", 5, 30),  # 10 shares missed between 09:01 and 09:05
        ("005930", "09:06", 1, 31),
        ("000660", "09:02", 7, 7),
    ])
    gaps = sequence_gaps(frame, THU)
    assert [(g.kind, g.collector, g.symbols, g.start, g.end) for g in gaps] == [
        (GapKind.SEQUENCE, "archive", ("005930",), at("09:01"), at("09:05"))
    ]
    assert "10 shares missed" in gaps[0].reason


def test_a_reported_day_volume_above_the_last_cum_is_a_gap_to_the_close():
    from stock_pipelines.gaps.sequence import tail_gaps
    from stock_pipelines.recovery.plan import minute_window

    frame = ticks([("005930", "09:00", 10, 10), ("005930", "15:10", 5, 15), ("000660", "09:02", 7, 7)])
    reported = {"005930": 21, "000660": 7, "035420": 3}  # 6 after 15:10; none; never archived
    gaps = tail_gaps(frame, THU, reported)
    assert [(g.kind, g.symbols, g.start, g.end) for g in gaps] == [
        (GapKind.SEQUENCE, ("005930",), at("15:10"), at("15:30")),
        (GapKind.SEQUENCE, ("035420",), at("09:00"), at("15:30")),
    ]
    assert gaps[1].reason == "tail: broker day volume 3 > last cum 0: 3 shares after the last archived trade"
    close = at("15:30")
    assert minute_window(gaps[0], close) == (at("15:10"), at("15:31"))  # the closing print's bar included
    assert tail_gaps(frame, THU, {}) == [] and tail_gaps(frame.clear(), THU, {"005930": 0}) == []


def test_first_trade_missing_earlier_volume_duplicates_and_unsorted_rows():
    frame = ticks([
        ("005930", "09:20", 3, 103),  # 100 shares traded before the first archived print
        ("005930", "09:21", 2, 105),
        ("005930", "09:21", 2, 105),  # the same trade twice: not a gap
        ("005930", "09:22", 1, 106),
    ])
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=7)
    for data in (frame, shuffled):
        gaps = sequence_gaps(data, THU)
        assert [(g.start, g.end) for g in gaps] == [(at("09:00"), at("09:20"))]
        assert "100 shares missed" in gaps[0].reason


def test_same_microsecond_gap_keeps_zero_length_and_overlap_is_inconsistent():
    frame = ticks([
        ("005930", "10:00", 1, 1),
        ("005930", "10:00", 1, 5),  # same instant, 3 shares missed between the two prints
        ("005930", "10:01", 10, 12),  # 5 + 10 != 12: overlapping quantities
    ])
    result = sequence_gap_frame(frame, THU)
    assert result.select("start", "end", "missing").rows() == [
        (at("10:00"), at("10:00"), 3),
        (at("10:00"), at("10:01"), -3),
    ]
    assert "inconsistent" in sequence_gaps(frame, THU)[1].reason


def test_gaps_outside_the_session_disappear_and_windows_are_clipped():
    frame = ticks([
        ("005930", "08:40", 1, 1),  # pre-market print (off-session data)
        ("005930", "09:10", 1, 5),  # gap (08:40, 09:10] -> clipped to [09:00, 09:10]
        ("005930", "15:30", 1, 6),
        ("005930", "16:10", 1, 9),  # after-hours: gap (15:30, 16:10] is outside trading time
    ])
    gaps = sequence_gaps(frame, THU)
    assert [(g.start, g.end) for g in gaps] == [(at("09:00"), at("09:10"))]
    assert sequence_gaps(frame, date(2026, 3, 7)) == []  # a Saturday: no session, no gaps


def test_per_collector_checks_each_stream_separately():
    a = ticks([("005930", "09:00", 1, 1), ("005930", "09:02", 1, 3)], collector="kis-1")
    b = ticks([("005930", "09:01", 1, 2)], collector="kiwoom-1")
    both = pl.concat([a, b])
    assert sequence_gaps(both, THU) == []  # together the archive has every trade
    per = sequence_gaps(both, THU, per_collector=True)
    assert sorted((g.collector, g.start, g.end) for g in per) == [
        ("kis-1", at("09:00"), at("09:02")),
        ("kiwoom-1", at("09:00"), at("09:01")),
    ]


def test_summary_counts_overlapping_symbol_gaps_once_in_minutes():
    frame = ticks([
        ("005930", "09:00", 1, 1), ("005930", "09:10", 1, 5),
        ("000660", "09:00", 1, 1), ("000660", "09:10", 1, 5),
    ])
    gaps = sequence_gaps(frame, THU)
    summary = minutes_lost(gaps)
    assert summary.rows() == [("archive", "sequence", 2, 10.0, 20.0)]
    table = gaps_frame(gaps)
    assert table.height == 2 and table.schema["start"] == pl.Datetime("us", "Asia/Seoul")


def test_symbols_that_are_not_krx_codes_are_refused_not_grouped_wrongly():
    frame = ticks([("bad!", "09:01", 1, 1), ("005930", "09:00", 1, 1)])  # unsorted: needs the integer key
    with pytest.raises(ValueError, match="not 6-character KRX codes"):
        sequence_gaps(frame, THU)


def test_a_quiet_tail_the_heartbeat_reports_trades_in_is_the_archive_read_too_early():
    """raw_ticks is read before gap_report judges it: on an accelerated clock the archive then
    ends tens of minutes before the heartbeats. The collector's latest beat names a later trade it
    archived, so only the stretch after that trade can be a silence."""
    trades = trade_frame(every("09:00", "14:40"))  # the archive as read: nothing after 14:39:50
    tail = [(at("14:39:50"), at("15:10"))]
    assert [(g.start, g.end) for g in silence_gaps(trades, ALL_DAY, THU, collector="c1", now=at("15:10"))] == tail
    reported = {"15:08": [], "15:02": [(at("15:02"), at("15:10"))], "14:39:50": tail}
    for last_trade, expected in reported.items():
        gaps = silence_gaps(trades, ALL_DAY, THU, collector="c1", now=at("15:10"),
                            reported_last_trade=at(last_trade))
        assert [(g.start, g.end) for g in gaps] == expected, last_trade


def test_the_reported_last_trade_moves_only_the_quiet_tail_of_the_current_up_time():
    # a silence between archived trades, and one before an outage, stay whatever the last beat says
    up = [UpInterval(at("08:30"), at("11:00")), UpInterval(at("11:30"), at("16:00"))]
    trades = trade_frame(every("09:00", "10:00") + every("10:10", "10:30"))
    gaps = silence_gaps(trades, up, THU, collector="c1", now=at("15:10"), reported_last_trade=at("15:08"))
    assert [(g.start, g.end) for g in gaps] == [(at("09:59:50"), at("10:10")), (at("10:29:50"), at("11:00"))]
