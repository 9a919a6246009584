"""Where a day's report lives: `<data root>/quality_report/date=YYYY-MM-DD/{summary.json,report.html}`,
each written to a temporary file and renamed into place (never half a report)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from stock_pipelines import lake
from stock_pipelines.atomic_files import write_text
from stock_pipelines.market import krx_calendar

ASSET = "quality_report"


def report_dir(day: date, data_dir: Path | None = None) -> Path:
    return lake.partition_dir(ASSET, day, data_dir)


def write_report(day: date, summary: dict, page: str, data_dir: Path | None = None) -> tuple[Path, Path]:
    directory = report_dir(day, data_dir)
    html_path, summary_path = directory / "report.html", directory / "summary.json"
    write_text(html_path, page)
    write_text(summary_path, json.dumps(summary, ensure_ascii=False, indent=1, default=str) + "\n")
    return summary_path, html_path


def read_summary(day: date, data_dir: Path | None = None) -> dict | None:
    path = report_dir(day, data_dir) / "summary.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def history(
    day: date, share: float, days: int, data_dir: Path | None = None
) -> list[tuple[str, float | None]]:
    """(date, completeness) of the `days` trading days ending with `day` (this day's share given),
    oldest first; None where no report was written."""
    calendar = krx_calendar()
    back: list[date] = []
    probe: date | None = day
    while probe is not None and len(back) < max(1, days) - 1:
        try:
            probe = calendar.previous_trading_day(probe)
        except ValueError:  # before the calendar's supported range
            break
        if probe is not None:
            back.append(probe)
    result: list[tuple[str, float | None]] = []
    for previous in reversed(back):
        summary = read_summary(previous, data_dir)
        result.append((previous.isoformat(), None if summary is None else float(summary["completeness"])))
    result.append((day.isoformat(), share))
    return result


SAMPLE_ASSET = "quality_broker_sample"  # the broker's bars in the sampled windows
WINDOWS_ASSET = "quality_broker_windows"  # the windows the broker answered
# where the check itself stored its comparison before the sample was an asset: read for older days
LEGACY_DISAGREEMENTS = "quality_broker_disagreements"
TOTALS_ASSET = "quality_broker_day_volumes"


def _write_json(day: date, name: str, meta: dict, data_dir: Path | None) -> None:
    write_text(report_dir(day, data_dir) / name, json.dumps(meta, ensure_ascii=False, indent=1) + "\n")


def _read_json(day: date, name: str, asset: str, data_dir: Path | None) -> dict | None:
    path = report_dir(day, data_dir) / name
    if not path.is_file() or not lake.partition_exists(asset, day, data_dir):
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_broker_sample(day: date, sample, data_dir: Path | None = None) -> tuple[Path, Path]:
    """What the broker answered for the day's sample (quality_broker_sample), for the bar-sample
    check and the day's report, which judge it without spending the calls again. The tables first,
    then the note naming them: the note is read only beside them."""
    bars = lake.write_partition(sample.bars, SAMPLE_ASSET, day, data_dir)
    windows = lake.write_partition(sample.windows, WINDOWS_ASSET, day, data_dir)
    meta = {"sampled": sample.sampled, "note": sample.note, "calls": sample.calls, "failed": sample.failed}
    _write_json(day, "broker_sample.json", meta, data_dir)
    return bars, windows


def _sample_note(meta: dict) -> dict:
    """broker_sample.json's fields: whether the day was sampled, why not or what, calls, failures."""
    return {
        "sampled": bool(meta["sampled"]),
        "note": str(meta["note"]),
        "calls": int(meta["calls"]),
        "failed": list(meta["failed"]),
    }


def read_broker_sample(day: date, data_dir: Path | None = None):
    """The stored sample of `day`, or None when quality_broker_sample never wrote one."""
    from stock_pipelines.quality.sample import BrokerSample

    meta = _read_json(day, "broker_sample.json", SAMPLE_ASSET, data_dir)
    if meta is None:
        return None
    return BrokerSample(
        **_sample_note(meta),
        windows=lake.read_partition(WINDOWS_ASSET, day, data_dir),
        bars=lake.read_partition(SAMPLE_ASSET, day, data_dir),
    )


def read_legacy_broker_check(day: date, data_dir: Path | None = None):
    """A day whose bar-sample check stored its own comparison (before quality_broker_sample): its
    result as stored, or None."""
    from stock_pipelines.quality.day import BrokerCheck

    meta = _read_json(day, "broker_sample.json", LEGACY_DISAGREEMENTS, data_dir)
    if meta is None or not lake.partition_exists(WINDOWS_ASSET, day, data_dir):
        return None
    return BrokerCheck(
        **_sample_note(meta),
        windows=lake.read_partition(WINDOWS_ASSET, day, data_dir),
        disagreements=lake.read_partition(LEGACY_DISAGREEMENTS, day, data_dir),
    )


def write_day_totals(day: date, totals, data_dir: Path | None = None) -> None:
    """The broker's day volumes quality_broker_day_volumes fetched, for gap_report, the day-volume
    check and the day's report."""
    lake.write_partition(totals.totals, TOTALS_ASSET, day, data_dir)
    meta = {
        "checked": totals.checked,
        "note": totals.note,
        "calls": totals.calls,
        "failed": totals.failed,
        "no_row": totals.no_row,
    }
    _write_json(day, "day_volumes.json", meta, data_dir)


def read_day_totals(day: date, data_dir: Path | None = None):
    from stock_pipelines.quality.day_totals import DayTotals

    meta = _read_json(day, "day_volumes.json", TOTALS_ASSET, data_dir)
    if meta is None:
        return None
    return DayTotals(
        checked=bool(meta["checked"]),
        note=str(meta["note"]),
        calls=int(meta["calls"]),
        totals=lake.read_partition(TOTALS_ASSET, day, data_dir),
        failed=list(meta["failed"]),
        no_row=list(meta.get("no_row", [])),
    )
