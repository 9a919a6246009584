"""The KRX calendar: XKRX agreement, the reviewed overrides, phases, trading time."""

from datetime import date, datetime, time, timedelta
from pathlib import Path

import exchange_calendars
import pandas as pd
import pytest

from stock_pipelines.market import SEOUL, CalendarHorizon, CalendarRangeError, Phase, krx_calendar
from stock_pipelines.market.calendar import load_overrides


def at(day: str, hhmmss: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(hhmmss), SEOUL)


@pytest.fixture(scope="module")
def calendar():
    return krx_calendar()


@pytest.fixture(scope="module")
def xkrx_sessions():
    xkrx = exchange_calendars.get_calendar("XKRX", start="2020-01-01", end="2028-12-31")
    return {
        ts.date(): (o.tz_convert(SEOUL).to_pydatetime(), c.tz_convert(SEOUL).to_pydatetime())
        for ts, o, c in zip(xkrx.schedule.index, xkrx.schedule.open, xkrx.schedule.close, strict=True)
    }


def test_agrees_with_xkrx_except_where_the_override_table_says_otherwise(calendar, xkrx_sessions):
    overridden = set(calendar.overrides)
    disagreements = []
    day = date(2020, 1, 1)
    while day <= date(2028, 12, 31):
        ours = calendar.session(day)
        theirs = xkrx_sessions.get(day)
        ours_tuple = (ours.open, ours.close) if ours else None
        if ours_tuple != theirs and day not in overridden:
            disagreements.append(day)
        day += timedelta(days=1)
    assert disagreements == []
    # and every override really changes something (no dead rows in the table)
    assert all(
        ((calendar.session(d).open, calendar.session(d).close) if calendar.session(d) else None)
        != xkrx_sessions.get(d)
        or d == date(2020, 12, 3)  # XKRX already has the 2020 CSAT session; kept for its source
        for d in overridden
    )


@pytest.mark.parametrize(
    "day", ["2021-11-18", "2022-11-17", "2023-11-16", "2024-11-14", "2025-11-13", "2026-11-19"]
)
def test_csat_days_open_10_and_close_1630(calendar, day):
    session = calendar.session(date.fromisoformat(day))
    assert (session.open.time(), session.close.time()) == (time(10), time(16, 30))
    assert "CSAT" in session.special_reason
    # the closing auction moves with the close
    assert calendar.phase(at(day, "16:19:59")) is Phase.CONTINUOUS
    assert calendar.phase(at(day, "16:20:00")) is Phase.CLOSING_AUCTION
    assert calendar.phase(at(day, "09:59:59")) is Phase.PRE_OPEN
    assert calendar.phase(at(day, "09:29:59")) is Phase.CLOSED


@pytest.mark.parametrize("day", ["2027-11-18", "2028-11-16"])  # third Thursday of November, as every year
def test_csat_days_not_yet_announced_are_provisional_rows(calendar, day):
    session = calendar.session(date.fromisoformat(day))
    assert (session.open.time(), session.close.time()) == (time(10), time(16, 30))
    assert calendar.overrides[date.fromisoformat(day)].status == "provisional"


@pytest.mark.parametrize(
    "day",
    ["2020-01-02", "2021-01-04", "2022-01-03", "2023-01-02", "2024-01-02", "2025-01-02", "2026-01-02",
     "2027-01-04", "2028-01-03"],
)
def test_first_trading_day_of_each_year_opens_at_10(calendar, day):
    session = calendar.session(date.fromisoformat(day))
    assert (session.open.time(), session.close.time()) == (time(10), time(15, 30))
    previous = calendar.previous_trading_day(session.day)  # None before the supported range
    assert previous is None or previous.year == session.day.year - 1


@pytest.mark.parametrize(
    "day, reason_part",
    [
        ("2020-04-15", None),  # 21st legislative election
        ("2022-03-09", None),  # 20th presidential election
        ("2022-06-01", None),  # 8th local elections
        ("2024-04-10", None),  # 22nd legislative election
        ("2025-06-03", None),  # 21st presidential election (snap)
        ("2026-06-03", "Local elections"),  # missing in exchange_calendars 4.13: from the override table
        ("2028-04-12", "National Assembly elections"),  # likewise (provisional: the statutory date)
    ],
)
def test_election_days_are_closed(calendar, day, reason_part):
    info = calendar.day(date.fromisoformat(day))
    assert not info.is_trading_day
    assert info.reason
    if reason_part:
        assert reason_part in info.reason


@pytest.mark.parametrize("year", range(2020, 2029))
def test_year_end_is_closed(calendar, year):
    assert not calendar.is_trading_day(date(year, 12, 31))
    last = calendar.previous_trading_day(date(year, 12, 31))
    assert last.year == year and last.month == 12


def test_override_table_rows_each_name_a_source():
    rows = load_overrides()
    assert rows, "the override table is empty"
    for row in rows:
        assert row.source.strip() and row.reason.strip()
        assert row.status in ("confirmed", "provisional")


def test_malformed_override_row_is_an_error_naming_the_line(tmp_path: Path):
    table = tmp_path / "overrides.csv"
    table.write_text(
        "date,kind,open,close,reason,source,status\n"
        "2026-11-19,special_session,10:00,16:30,CSAT,somewhere,confirmed\n"
        "2026-11-20,special_session,16:30,10:00,backwards,somewhere,confirmed\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"overrides.csv line 3: open must be before close"):
        load_overrides(table)


@pytest.mark.parametrize(
    "instant, phase",
    [
        ("08:29:59", Phase.CLOSED),
        ("08:30:00", Phase.PRE_OPEN),
        ("08:59:59", Phase.PRE_OPEN),
        ("09:00:00", Phase.CONTINUOUS),
        ("15:19:59", Phase.CONTINUOUS),
        ("15:20:00", Phase.CLOSING_AUCTION),
        ("15:29:59", Phase.CLOSING_AUCTION),
        ("15:30:00", Phase.CLOSED),
    ],
)
def test_phase_boundaries_on_a_regular_day(calendar, instant, phase):
    assert calendar.phase(at("2026-11-20", instant)) is phase


def test_phase_is_closed_on_weekends_and_holidays(calendar):
    assert calendar.phase(at("2026-11-21", "10:00:00")) is Phase.CLOSED  # Saturday
    assert calendar.phase(at("2026-06-03", "10:00:00")) is Phase.CLOSED  # local elections


def test_phase_accepts_any_timezone(calendar):
    utc = datetime(2026, 11, 20, 0, 0, tzinfo=pd.Timestamp(0, tz="UTC").tzinfo)  # 09:00 KST
    assert calendar.phase(utc) is Phase.CONTINUOUS


def test_naive_datetimes_are_refused(calendar):
    with pytest.raises(ValueError, match="naive datetime"):
        calendar.phase(datetime(2026, 11, 20, 10, 0))


def test_minute_bars_of_a_regular_and_a_csat_session(calendar):
    regular = calendar.session(date(2026, 11, 20)).minute_bar_starts()
    assert len(regular) == 381
    assert regular[0] == at("2026-11-20", "09:00:00")
    assert regular[-2] == at("2026-11-20", "15:19:00")
    assert regular[-1] == at("2026-11-20", "15:30:00")  # the closing print's own bar
    csat = calendar.session(date(2026, 11, 19)).minute_bar_starts()
    assert (csat[0], csat[-2], csat[-1]) == (
        at("2026-11-19", "10:00:00"),
        at("2026-11-19", "16:19:00"),
        at("2026-11-19", "16:30:00"),
    )


@pytest.mark.parametrize(
    "start, end, minutes",
    [
        # the example: down from 15:00 to 09:30 the next trading day
        (at("2026-11-19", "15:00:00"), at("2026-11-20", "09:30:00"), 90 + 30),  # CSAT day closes 16:30
        (at("2026-11-20", "15:00:00"), at("2026-11-23", "09:30:00"), 30 + 30),  # across a weekend
        (at("2026-06-02", "15:00:00"), at("2026-06-04", "09:30:00"), 30 + 30),  # across the election day
        (at("2026-11-20", "08:00:00"), at("2026-11-20", "08:59:00"), 0),  # pre-open is not trading time
        (at("2026-11-20", "15:25:00"), at("2026-11-20", "18:00:00"), 5),  # closing auction counts
        (at("2026-11-20", "10:00:00"), at("2026-11-20", "10:00:00"), 0),  # empty interval
        (at("2026-11-20", "11:00:00"), at("2026-11-20", "10:00:00"), 0),  # reversed interval
        (at("2026-11-16", "00:00:00"), at("2026-11-21", "00:00:00"), 4 * 390 + 390),  # a week incl. CSAT
        (at("2025-12-30", "15:00:00"), at("2026-01-02", "10:30:00"), 30 + 30),  # year end, 10:00 open
    ],
)
def test_trading_time_inside_intervals(calendar, start, end, minutes):
    assert calendar.trading_time(start, end) == timedelta(minutes=minutes)


def test_trading_windows_split_per_session(calendar):
    windows = calendar.trading_windows(at("2026-11-20", "15:00:00"), at("2026-11-23", "09:30:00"))
    assert windows == [
        (at("2026-11-20", "15:00:00"), at("2026-11-20", "15:30:00")),
        (at("2026-11-23", "09:00:00"), at("2026-11-23", "09:30:00")),
    ]


def test_dates_outside_the_supported_range_are_refused(calendar):
    with pytest.raises(CalendarRangeError, match=r"2019-12-31 is outside the supported range 2020-01-01\.\.2028-12-31"):
        calendar.day(date(2019, 12, 31))
    with pytest.raises(CalendarRangeError):
        calendar.trading_time(at("2028-12-28", "09:00:00"), at("2029-01-05", "09:00:00"))


@pytest.mark.parametrize(
    "today, days_left, running_out",
    [
        (date(2026, 12, 1), 365 + 366 + 30, False),  # 2028 is a leap year
        (date(2028, 11, 1), 60, False),
        (date(2028, 11, 2), 59, True),
        (date(2028, 12, 31), 0, True),
        (date(2029, 1, 2), -2, True),
    ],
)
def test_the_horizon_counts_the_days_left_and_warns_below_60(today, days_left, running_out):
    horizon = CalendarHorizon(today, date(2028, 12, 31))
    assert (horizon.days_left, horizon.running_out) == (days_left, running_out)
    described = horizon.describe()
    assert ("extend SUPPORTED_LAST_DAY" in described) is running_out
    assert horizon.to_json()["warning"] == (described if running_out else None)
    if days_left >= 0:
        assert described.startswith(f"KRX calendar supported through 2028-12-31: {days_left} days left")
    else:
        assert described.startswith("KRX calendar ended on 2028-12-31, 2 days ago")
