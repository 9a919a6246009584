"""`stock-pipelines report DATE`: bad input is one line and exit 2; a stored report is printed."""

from datetime import date

import pytest

from stock_pipelines.cli import main
from stock_pipelines.quality.store import history, report_dir, write_report

DAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "2026-11-21"], "2026-11-21 is not a KRX trading day"),
        (["report", "20-11-2026"], "is not a date"),
        (
            ["report", "2026-11-20"],
            "no quality report for 2026-11-20: materialize quality_report[2026-11-20] or pass --build",
        ),
        (["report", "2026-11-20", "--build"], "minute_bars[2026-11-20] is not in the lake"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


SUMMARY = {
    "date": "2026-11-20",
    "certified": False,
    "completeness": 0.99875,
    "expected": 4000,
    "present": 3995,
    "missing": 5,
    "error_share": 0.999,
    "warn_share": 0.9999,
    "checks": {"completeness": False, "day_volume": True},
    "by_collector": [{"collector": "c1", "symbols": 10, "expected": 4000, "present": 3995, "share": 0.99875}],
    "symbols_with_holes": ["005930"],
    "closing_missing": [],
    "outside_trading_time": 0,
    "ohlc_violations": 0,
    "volume_disagreements": 0,
    "broker_note": "off",
    "broker_disagreements": 0,
    "day_totals_note": "40 of 40 symbols' day volume from kis",
}


def test_a_stored_report_is_printed_with_its_html_path(capsys):
    write_report(DAY, SUMMARY, "<html></html>")
    assert main(["report", "2026-11-20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2026-11-20: NOT CERTIFIED"
    assert out[1].startswith("completeness 99.875% (3995/4000 expected symbol-minutes, 5 missing")
    assert out[2] == "failed checks: completeness"
    assert "symbols with holes: 1 (005930)" in out
    assert "broker day volumes: 40 of 40 symbols' day volume from kis" in out
    assert out[-1] == f"html: {report_dir(DAY) / 'report.html'}"


def test_history_reads_earlier_reports_and_marks_days_without_one():
    write_report(date(2026, 11, 18), {**SUMMARY, "completeness": 0.5}, "<html></html>")
    trend = history(DAY, 1.0, 4)
    assert trend == [("2026-11-17", None), ("2026-11-18", 0.5), ("2026-11-19", None), ("2026-11-20", 1.0)]
