"""Pure-logic tests of the quality measures on small hand-made frames (no Dagster, no servers)."""

from datetime import date, datetime, timedelta
from typing import ClassVar

import polars as pl
import pytest

from stock_pipelines.brokers.model import BAR_SCHEMA, BrokerAuthError, BrokerError
from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.gaps.sequence import tail_gaps
from stock_pipelines.gaps.summary import gaps_frame
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.quality.consistency import compare_bars, day_volume, invariant_violations
from stock_pipelines.quality.coverage import compute_coverage
from stock_pipelines.quality.day_totals import choose_symbols, day_totals_check, rotation_width
from stock_pipelines.quality.sample import choose_sample

DAY = date(2026, 11, 20)
SESSION = krx_calendar().session(DAY)


def at(hhmm: str, second: int = 0) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 11, 20, hour, minute, second, tzinfo=SEOUL)


def bars(rows) -> pl.DataFrame:
    """rows: (symbol, HH:MM, open, high, low, close, volume[, source])"""
    data = [
        (s, at(m), o, h, lo, c, v, None, rest[0] if rest else "ticks") for s, m, o, h, lo, c, v, *rest in rows
    ]
    return (
        pl.DataFrame(data, schema={**BAR_SCHEMA, "minute": pl.Datetime("us", "Asia/Seoul")}, orient="row")
        .with_columns(pl.col("minute").dt.convert_time_zone("UTC"))
        .cast(BAR_SCHEMA)
    )


def ticks(rows) -> pl.DataFrame:
    """rows: (symbol, HH:MM:SS, qty, cum)"""
    data = [
        (s, datetime.strptime(f"2026-11-20 {t}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=SEOUL), q, c, "c1")
        for s, t, q, c in rows
    ]
    return pl.DataFrame(
        data,
        schema={
            "symbol": pl.String,
            "ts": pl.Datetime("us", "Asia/Seoul"),
            "qty": pl.Int64,
            "cum": pl.Int64,
            "collector": pl.String,
        },
        orient="row",
    ).with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def no_gaps():
    return gaps_frame([])


def test_a_cumulative_volume_jump_makes_the_minutes_between_expected():
    tick_rows = [("005930", "09:00:00", 10, 10), ("005930", "09:01:30", 5, 15), ("005930", "09:05:10", 5, 40)]
    present = bars(
        [
            ("005930", "09:00", 1, 1, 1, 1, 10),
            ("005930", "09:01", 1, 1, 1, 1, 5),
            ("005930", "09:05", 1, 1, 1, 1, 5),
        ]
    )
    cov = compute_coverage(
        DAY,
        present,
        ticks(tick_rows),
        no_gaps(),
        pl.DataFrame(schema=BAR_SCHEMA),
        recovery_complete=False,
        session=SESSION,
    )
    # 20 shares missing between 09:01:30 and 09:05:10: slots 09:01..09:05 may hold them
    assert cov.expected_count == 6  # 09:00, 09:01 .. 09:05
    assert cov.present_count == 3
    holes = cov.holes.select("symbol", pl.col("start").dt.strftime("%H:%M"), "minutes", "evidence").rows()
    assert holes == [("005930", "09:02", 3, "continuity")]


def test_a_gap_window_the_broker_answered_expects_only_the_broker_bars():
    gap = Gap(GapKind.DOWNTIME, "c1", at("10:00"), at("10:05"), ("005930", "000660"), "down")
    recovered = bars([("005930", "10:01", 1, 1, 1, 1, 3, "rest_kis")])
    tick_rows = [("005930", "09:59:00", 1, 1), ("000660", "09:59:00", 1, 1)]
    present = pl.concat(
        [bars([("005930", "09:59", 1, 1, 1, 1, 1), ("000660", "09:59", 1, 1, 1, 1, 1)]), recovered]
    )
    cov = compute_coverage(
        DAY, present, ticks(tick_rows), gaps_frame([gap]), recovered, recovery_complete=False, session=SESSION
    )
    by_symbol = dict(cov.expected.group_by("symbol").len().iter_rows())
    # 005930: the REST answer for its window is ground truth (1 bar); 000660: no answer, 5 slots may hold trades
    assert by_symbol == {"005930": 2, "000660": 6}
    assert cov.present_count == 3
    assert sorted(set(cov.holes["symbol"])) == ["000660"]
    complete = compute_coverage(
        DAY, present, ticks(tick_rows), gaps_frame([gap]), recovered, recovery_complete=True, session=SESSION
    )
    assert complete.share == 1.0 and complete.expected_count == 3
    collectors = {
        r["collector"]: (r["expected"], r["present"]) for r in cov.by_collector.iter_rows(named=True)
    }
    assert collectors == {"c1": (8, 3), "(all)": (8, 3)}


def test_closing_print_and_bars_outside_trading_time():
    gap = Gap(GapKind.DOWNTIME, "c1", at("15:25"), at("15:30"), ("005930",), "down")
    present = bars(
        [
            ("005930", "15:19", 1, 1, 1, 1, 1),
            ("000660", "15:30", 1, 1, 1, 1, 1),
            ("000660", "15:25", 1, 1, 1, 1, 1),
        ]
    )  # 15:25 is inside the closing auction: no bar slot
    cov = compute_coverage(
        DAY,
        present,
        ticks([("005930", "15:19:00", 1, 1)]),
        gaps_frame([gap]),
        pl.DataFrame(schema=BAR_SCHEMA),
        recovery_complete=False,
        session=SESSION,
    )
    assert cov.closing_expected == 2 and cov.closing_missing == ["005930"]
    assert cov.outside_trading_time.select(
        "symbol", pl.col("minute").dt.convert_time_zone("Asia/Seoul").dt.strftime("%H:%M")
    ).rows() == [("000660", "15:25")]


def test_invariants_name_every_broken_bar():
    frame = bars(
        [
            ("005930", "09:00", 10, 12, 9, 11, 5),
            ("005930", "09:01", 10, 9, 9, 9, 5),
            ("005930", "09:02", 10, 12, 11, 11, 5),
            ("005930", "09:03", 10, 12, 9, 11, -1),
            ("000660", "09:00", 10, 12, 9, 11, 5),
            ("000660", "09:00", 10, 12, 9, 11, 5),
        ]
    )
    found = (
        invariant_violations(frame)
        .select("symbol", pl.col("minute").dt.convert_time_zone("Asia/Seoul").dt.strftime("%H:%M"), "rule")
        .rows()
    )
    assert found == [
        ("000660", "09:00", "duplicate_symbol_minute"),
        ("000660", "09:00", "duplicate_symbol_minute"),
        ("005930", "09:01", "high_below_open_or_close"),
        ("005930", "09:02", "low_above_open_or_close"),
        ("005930", "09:03", "negative_volume"),
    ]


def test_day_volume_against_the_last_cumulative_volume():
    tick_rows = [("005930", "09:00:00", 10, 10), ("005930", "09:02:00", 5, 20), ("000660", "09:00:00", 7, 7)]
    frame = bars(
        [
            ("005930", "09:00", 1, 1, 1, 1, 10),
            ("005930", "09:02", 1, 1, 1, 1, 10),
            ("000660", "09:00", 1, 1, 1, 1, 6),
        ]
    )
    volume = (
        day_volume(ticks(tick_rows), frame)
        .select("symbol", "last_cum", "ticks_missing", "bars_missing")
        .rows()
    )
    assert volume == [("000660", 7, 0, 1), ("005930", 20, 5, 0)]


def test_day_volume_takes_the_brokers_day_total_where_fetched():
    # 005930's archive ends at cum 20 but the broker reports 26: 6 shares traded after the last
    # archived trade, invisible to the cumulative volume alone
    tick_rows = [("005930", "09:00:00", 10, 10), ("005930", "09:02:00", 10, 20), ("000660", "09:00:00", 7, 7)]
    frame = bars([("005930", "09:00", 1, 1, 1, 1, 10), ("005930", "09:02", 1, 1, 1, 1, 10),
                  ("000660", "09:00", 1, 1, 1, 1, 7), ("035420", "09:00", 1, 1, 1, 1, 3)])
    broker = pl.DataFrame({"symbol": ["005930", "035420"], "broker_volume": [26, 0]})
    volume = day_volume(ticks(tick_rows), frame, broker).select(
        "symbol", "reported", "reported_by", "cum_behind_broker", "ticks_missing", "bars_missing"
    )
    assert volume.rows() == [
        ("000660", 7, "cum", None, 0, 0),  # not asked: the last cum stands
        ("005930", 26, "broker", 6, 6, 6),
        ("035420", 0, "broker", 0, 0, -3),  # the broker says nothing traded: our 3 shares disagree
    ]
    # without the broker, 035420 (bars only, from REST) has no reported volume to judge by
    alone = day_volume(ticks(tick_rows), frame).filter(pl.col("symbol") == "035420")
    assert alone.select("reported", "reported_by", "bars_missing").row(0) == (None, None, None)


def test_a_broker_figure_above_an_archived_closing_print_is_after_hours_volume_not_a_tail():
    # 005930's last archived trade is its closing print (15:30, in the closing auction): nothing of
    # the regular session follows it, so the broker's extra 4 shares were traded after hours.
    # 000660's last trade is at 15:10: its 6 extra shares may be a lost tail (closing print included).
    tick_rows = [("005930", "09:00:00", 10, 10), ("005930", "15:30:00", 5, 15), ("000660", "15:10:00", 7, 7)]
    frame = bars([("005930", "09:00", 1, 1, 1, 1, 10), ("005930", "15:30", 1, 1, 1, 1, 5),
                  ("000660", "15:10", 1, 1, 1, 1, 7)])
    broker = pl.DataFrame({"symbol": ["005930", "000660"], "broker_volume": [19, 13]})
    volume = day_volume(ticks(tick_rows), frame, broker, SESSION.closing_auction_start).select(
        "symbol", "reported", "reported_by", "broker_after_close", "cum_behind_broker", "bars_missing"
    )
    assert volume.rows() == [
        ("000660", 13, "broker", False, 6, 6),
        ("005930", 15, "cum", True, None, 0),
    ]
    gaps = tail_gaps(ticks(tick_rows), DAY, {"005930": 19, "000660": 13})
    assert [g.symbols for g in gaps] == [("000660",)]


def test_day_volume_symbols_at_risk_first_then_a_rotation_that_reaches_every_symbol():
    codes = [f"{n:06d}" for n in range(20)]
    volume = pl.DataFrame({"symbol": codes, "last_cum": range(100, 80, -1), "bar_volume": range(100, 80, -1)})
    at_risk = {codes[5], codes[6], codes[7], codes[8], "999999"}  # 999999: a gap, no trade, no bar
    first = choose_symbols(volume, at_risk, budget=4, day=DAY)
    # the symbol with no data first, then by volume; a quarter of the budget always rotates
    assert first[:3] == ["999999", codes[5], codes[6]] and len(first) == 4 and first[3] not in at_risk
    assert rotation_width(4) == 1 and rotation_width(50) == 13 and rotation_width(0) == 0
    # over Fri -> Mon -> a holiday week: consecutive trading days tile the universe
    calendar = krx_calendar()
    days, probe = [], DAY
    while len(days) < len(codes) // rotation_width(4):  # the promise: ceil(symbols / width) trading days
        days.append(probe)
        probe = calendar.next_trading_day(probe)
    assert (days[-1] - days[0]).days > len(days)  # weekends crossed
    seen = {s for day in days for s in choose_symbols(volume, at_risk, budget=4, day=day)}
    assert seen >= set(codes) - at_risk
    assert choose_symbols(volume, set(), budget=0, day=DAY) == []
    everyone = choose_symbols(volume, set(), budget=30, day=DAY)
    assert sorted(everyone) == codes and len(everyone) == len(codes)


def test_day_totals_are_not_fetched_before_the_day_is_final_or_from_a_broker_without_them():
    volume = pl.DataFrame({"symbol": ["a", "b"], "last_cum": [5, 6], "bar_volume": [5, 6]})

    class Minutes:  # a minute-bar source only (Kiwoom here)
        name = "kiwoom"

    asked: list[str] = []

    class Totals:
        name = "kis"
        reported: ClassVar = {"a": None, "b": 6}  # no row for "a": unknown, not zero

        def day_volume(self, symbol, day):
            asked.append(symbol)
            if symbol == "bad":
                raise BrokerError("KIS FHKST03010100: OPSQ2001 bad input")
            if symbol == "revoked":
                raise BrokerAuthError("KIS token refused: EGW00103")
            return self.reported[symbol]

    closing = SESSION.close + timedelta(minutes=2)
    assert day_totals_check(SESSION, volume, set(), Totals(), 0, closing).note.startswith("off")
    assert "does not report day volumes" in day_totals_check(SESSION, volume, set(), Minutes(), 5, closing).note
    early = day_totals_check(SESSION, volume, set(), Totals(), 5, closing)
    assert not early.checked and "final from" in early.note and asked == []
    later = day_totals_check(SESSION, volume, {"bad"}, Totals(), 5, SESSION.close + timedelta(hours=1))
    assert later.checked and later.calls == 3 and asked == ["bad", "a", "b"]
    assert later.totals.rows() == [("b", 6)] and later.no_row == ["a"]
    assert later.failed == ["bad: BrokerError: KIS FHKST03010100: OPSQ2001 bad input"]
    assert later.note == "1 of 3 symbols' day volume from kis, 1 without a row for the day (not judged), 1 not answered"
    refused = day_totals_check(SESSION, volume, {"revoked"}, Totals(), 5, SESSION.close + timedelta(hours=1))
    assert not refused.checked and refused.calls == 1 and refused.totals.height == 0
    assert refused.failed == [
        "revoked: BrokerAuthError: KIS token refused: EGW00103",
        "a: not asked (credentials refused)",
        "b: not asked (credentials refused)",
    ]


def test_compare_bars_lists_each_field_and_one_sided_bar_inside_the_windows_only():
    ours = bars(
        [
            ("005930", "09:00", 10, 12, 9, 11, 5),
            ("005930", "09:01", 10, 12, 9, 11, 5),
            ("005930", "09:03", 10, 12, 9, 11, 5),
            ("005930", "11:00", 1, 1, 1, 1, 1),
        ]
    )
    truth = bars(
        [
            ("005930", "09:00", 10, 12, 9, 11, 5, "rest_kis"),
            ("005930", "09:01", 10, 13, 9, 12, 5, "rest_kis"),
            ("005930", "09:02", 10, 12, 9, 11, 4, "rest_kis"),
        ]
    )
    windows = pl.DataFrame({"symbol": ["005930"], "start": [at("09:00")], "end": [at("09:05")]}).with_columns(
        pl.col("start", "end").dt.convert_time_zone("UTC")
    )
    found = (
        compare_bars(ours, truth, windows)
        .select(
            pl.col("minute").dt.convert_time_zone("Asia/Seoul").dt.strftime("%H:%M"), "field", "ours", "truth"
        )
        .rows()
    )
    assert found == [
        ("09:01", "close", 11, 12),
        ("09:01", "high", 12, 13),
        ("09:02", "bar", None, 4),
        ("09:03", "bar", 5, None),
    ]


def test_the_sample_takes_recovered_windows_first_and_keeps_the_budget():
    recovered = bars(
        [
            ("000660", "10:00", 1, 1, 1, 1, 1, "rest_kis"),
            ("000660", "10:01", 1, 1, 1, 1, 1, "rest_kis"),
            ("000660", "13:00", 1, 1, 1, 1, 1, "rest_kis"),
        ]
    )
    activity = {"005930": 100, "000660": 50, "035420": 10}
    chosen = choose_sample(DAY, SESSION, recovered, activity, budget=4, today=DAY + timedelta(days=2))
    assert [(w.symbol, w.start.strftime("%H:%M"), w.end.strftime("%H:%M"), w.reason) for w in chosen][:2] == [
        ("000660", "10:00", "10:02", "recovered"),
        ("000660", "13:00", "13:01", "recovered"),
    ]
    assert [(w.symbol, w.reason) for w in chosen[2:]] == [("005930", "active"), ("000660", "active")]
    assert sum(w.calls for w in chosen) == 4
    assert choose_sample(DAY, SESSION, recovered, activity, budget=0, today=DAY) == []


def test_config_from_environment_variables():
    assert QualityConfig.from_env({}) == QualityConfig(0.999, 0.9999, 20, 20, 50)
    assert QualityConfig.from_env({"STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS": "7"}).day_volume_calls == 7
    with pytest.raises(ValueError, match="STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS='-1' must be >= 0"):
        QualityConfig.from_env({"STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS": "-1"})
    config = QualityConfig.from_env(
        {"STOCK_PIPELINES_COMPLETENESS_ERROR": "0.95", "STOCK_PIPELINES_QUALITY_REST_CALLS": "0"}
    )
    assert config.error_share == 0.95 and config.rest_calls == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        QualityConfig.from_env({"STOCK_PIPELINES_COMPLETENESS_ERROR": "99.9"})


def test_the_quality_resource_sets_what_the_environment_leaves_unset(monkeypatch):
    from stock_pipelines.defs.resources import QualityResource

    monkeypatch.setenv("STOCK_PIPELINES_QUALITY_REST_CALLS", "3")
    monkeypatch.delenv("STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS", raising=False)
    config = QualityResource(day_volume_calls=9).config()
    assert (config.rest_calls, config.day_volume_calls, config.error_share) == (3, 9, 0.999)



def test_every_blocking_verdict_is_reported_by_a_named_check():
    """The report's Checks table names the minute_bars checks a user sees in the Dagster UI."""
    from stock_pipelines.quality.day import BLOCKING
    from stock_pipelines.quality.render import CHECK_VERDICTS

    reported = [name for names in CHECK_VERDICTS.values() for name in names]
    assert sorted(reported) == sorted(BLOCKING)
    assert all(check.startswith("minute_bars_") for check in CHECK_VERDICTS)
