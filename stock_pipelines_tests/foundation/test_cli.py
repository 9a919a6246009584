"""`stock-pipelines calendar` through the installed console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stock_pipelines.ops import clock
from stock_pipelines.ops.clock import ENV_FAKE_NOW

CLI = shutil.which("stock-pipelines", path=str(Path(sys.executable).parent))


def run_cli(*args: str, now: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI; `now` pins its project clock (else the session's)."""
    assert CLI, "the stock-pipelines console script is not installed in this environment"
    env = {**os.environ, ENV_FAKE_NOW: now} if now else None
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def test_calendar_prints_one_json_object_a_line():
    result = run_cli("calendar", "2026-11-19", "2026-06-03", "2026-11-20", "2026-11-21")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {
            "date": "2026-11-19",
            "trading_day": True,
            "open": "2026-11-19T10:00:00+09:00",
            "close": "2026-11-19T16:30:00+09:00",
            "reason": "CSAT day (2027 college scholastic ability test): opens and closes one hour late",
        },
        {
            "date": "2026-06-03",
            "trading_day": False,
            "open": None,
            "close": None,
            "reason": "Local elections (9th nationwide local elections): public holiday",
        },
        {
            "date": "2026-11-20",
            "trading_day": True,
            "open": "2026-11-20T09:00:00+09:00",
            "close": "2026-11-20T15:30:00+09:00",
            "reason": None,
        },
        {"date": "2026-11-21", "trading_day": False, "open": None, "close": None, "reason": "weekend"},
    ]


@pytest.mark.parametrize(
    "now, day, trading_day",
    [("2026-12-01T12:20:00+09:00", "2026-12-01", True), ("2026-12-25T23:50:00+09:00", "2026-12-25", False)],
)
def test_calendar_without_a_date_answers_for_today_by_the_project_clock(now, day, trading_day):
    result = run_cli("calendar", now=now)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (record["date"], record["trading_day"]) == (day, trading_day)


@pytest.mark.clock
def test_calendar_without_a_date_answers_for_the_sessions_today():
    before = clock.now().date().isoformat()
    result = run_cli("calendar")
    after = clock.now().date().isoformat()  # the CLI may have run across midnight
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["date"] in {before, after}
    assert "KRX calendar supported through" in result.stderr


def test_calendar_reports_the_days_left_and_warns_below_60():
    plenty = run_cli("calendar", "2026-11-20", now="2026-12-01T12:20:00+09:00")
    assert plenty.returncode == 0, plenty.stderr
    assert plenty.stderr == "KRX calendar supported through 2028-12-31: 761 days left\n"
    short = run_cli("calendar", "2026-11-20", now="2028-11-20T09:00:00+09:00")
    assert short.returncode == 0, short.stderr
    assert short.stderr.startswith("WARNING: KRX calendar supported through 2028-12-31: 41 days left, below 60")
    assert json.loads(short.stdout)["date"] == "2026-11-20"  # stdout is still one record per date


@pytest.mark.parametrize(
    "argument, message",
    [
        ("2026-13-01", "'2026-13-01' is not a date: expected YYYY-MM-DD"),
        ("2019-12-31", "2019-12-31 is outside the supported range 2020-01-01..2028-12-31"),
        ("2029-01-02", "2029-01-02 is outside the supported range 2020-01-01..2028-12-31"),
        ("yesterday", "'yesterday' is not a date"),
    ],
)
def test_bad_dates_are_one_line_exit_2_no_traceback(argument, message):
    result = run_cli("calendar", argument)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["sim", "exchange", "--port", "70000"], "argument --port: must be 0..65535, not 70000"),
        (["sim", "exchange", "--port", "-1"], "argument --port: must be 0..65535, not -1"),
        (["sim", "exchange", "--port", "eighty"], "argument --port: 'eighty' is not a whole number"),
        (["sim", "exchange", "--speed", "inf"], "argument --speed: must be a number in (0, 100000], not inf"),
        (["sim", "exchange", "--speed", "nan"], "argument --speed: must be a number in (0, 100000], not nan"),
        (["sim", "exchange", "--rate-limit", "0"], "argument --rate-limit: must be 1..100000, not 0"),
        (["sim", "exchange", "--kiwoom-rate-limit", "-2"], "argument --kiwoom-rate-limit: must be 1..100000"),
        (["sim", "day", "--out", "unused", "--corrupt", "-1"], "argument --corrupt: must be 0..1000000, not -1"),
        (["demo", "--symbols", "0"], "argument --symbols: must be 1..9999, not 0"),
        (["demo", "--corrupt", "-3"], "argument --corrupt: must be 0..1000000, not -3"),
        (["demo", "--timeout", "nan"], "argument --timeout: must be a number in (0, 86400], not nan"),
        (["ui", "--port", "70000"], "argument --port: must be 1..65535, not 70000"),
    ],
)
def test_bad_numbers_are_one_line_exit_2_no_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr
