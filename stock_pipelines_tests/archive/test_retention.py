"""Retention: deletes only old, materialized, checked and certified raw days, counting trading
days; keeps and explains everything else, and logs every decision where the soak's figures read it."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg
import pytest

from stock_pipelines.archive import retention, retention_log
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.jobs.retention import archive_retention_job
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.defs.schedules import archive_retention_schedule
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.quality.store import write_report
from stock_pipelines_tests.dagster_resources import resources

from .conftest import seoul_us, write_day

AS_OF = date(2026, 11, 20)  # keep 3 -> 11-20, 11-19, 11-18 are the newest trading days


def make_day(root, day: date, collector: str = "kis-1") -> None:
    write_day(root, collector, [("kis", "005930", seoul_us(10, 0, day=day), 100, 1, 1)])
    (root / collector / "system").mkdir(exist_ok=True)
    (root / collector / "system" / f"{day:%Y%m%d}.jsonl").write_text('{"v":1,"event":"UP"}\n')


def certify(data_dir, day: date, certified: bool = True) -> None:
    """The day's quality report summary, as quality_report writes it."""
    summary = {"day": day.isoformat(), "certified": certified, "completeness": 1.0}
    write_report(day, summary, "<html/>", data_dir)


CERTIFIED = retention.DayStatus(True, True, certified=True)


def test_plan_and_apply_delete_exactly_the_eligible_days(tmp_path):
    root = tmp_path / "archive"
    days = [date(2026, 11, d) for d in (11, 12, 13, 16, 17, 18, 19, 20)]
    for day in days:
        make_day(root, day)
    make_day(root, date(2026, 11, 13), "kiwoom-1")
    (root / "kis-1" / "trades" / "20261114").mkdir()  # a Saturday directory: not a trading day
    (root / "kis-1" / "trades" / "20261114" / "09_00.jsonl").write_text("{}\n")
    (root / "kis-1" / "trades" / "20261112" / "notes.txt").write_text("operator notes\n")  # not ours
    (root / "kis-1" / "trades" / "scratch").mkdir()  # not a day
    status = {
        date(2026, 11, 11): retention.DayStatus(True, True, certified=False),  # checked, not certified
        date(2026, 11, 12): CERTIFIED,
        date(2026, 11, 13): CERTIFIED,
        date(2026, 11, 16): retention.DayStatus(True, False, "raw_ticks_schema failed"),
        date(2026, 11, 17): retention.DayStatus(False, False, "no materialization"),
    }
    plan = retention.plan([root], AS_OF, lambda d: status[d], krx_calendar(), keep_trading_days=3)
    assert plan.oldest_kept_trading_day == date(2026, 11, 18)
    assert [d.day for d in plan.to_delete] == [date(2026, 11, 12), date(2026, 11, 13)]
    reasons = {d.day: d.reason for d in plan.kept}
    assert "not a KRX trading day" in reasons[date(2026, 11, 14)]
    assert reasons[date(2026, 11, 11)] == (
        "2026-11-11 is not certified: its quality report is missing or not certified"
    )
    assert "checks have not passed: raw_ticks_schema failed" in reasons[date(2026, 11, 16)]
    assert "not materialized" in reasons[date(2026, 11, 17)]
    assert all("newest 3 trading days" in reasons[date(2026, 11, d)] for d in (18, 19, 20))

    report = retention.apply(plan)
    assert not (root / "kis-1" / "system" / "20261113.jsonl").exists()
    assert not (root / "kiwoom-1" / "trades" / "20261113").exists()
    assert (root / "kis-1" / "trades" / "20261112" / "notes.txt").exists()  # left, reported
    assert report.left == [root / "kis-1" / "trades" / "20261112" / "notes.txt"]
    for kept in ("20261111", "20261114", "20261116", "20261117", "20261118", "20261120", "scratch"):
        assert (root / "kis-1" / "trades" / kept).exists()
    assert (root / "kis-1" / "system" / "20261116.jsonl").exists()


@pytest.mark.parametrize("keep", [2, 11])
def test_keep_outside_3_to_10_is_refused(tmp_path, keep):
    with pytest.raises(ValueError, match="3..10"):
        retention.plan([tmp_path], AS_OF, lambda d: retention.DayStatus(True, True), krx_calendar(), keep)


def test_retention_job_reads_materializations_and_checks_from_the_instance(archive_env, monkeypatch):
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL)))
    data = archive_env.parent / "data"
    for day in (12, 13, 16, 17, 18):
        make_day(archive_env, date(2026, 11, day))
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-11-12", "2026-11-13"):
        assert dg.materialize(
            [raw_ticks, *raw_ticks_checks], partition_key=day, instance=instance, resources=resources()
        ).success
    certify(data, date(2026, 11, 13))
    certify(data, date(2026, 11, 12), certified=False)  # checks passed, but the day's report is not certified
    assert dg.materialize(
        [raw_ticks], partition_key="2026-11-16", instance=instance, selection=[raw_ticks], resources=resources()
    ).success  # checks never ran
    result = archive_retention_job.execute_in_process(
        instance=instance,
        resources=resources(archive=ArchiveResource(archive_dir=str(archive_env))),
        run_config={
            "ops": {"archive_retention": {"config": {"as_of": "2026-11-20", "keep_trading_days": 3}}}
        },
    )
    assert result.success
    summary = result.output_for_node("archive_retention")
    assert summary["deleted_days"] == ["2026-11-13"]
    assert summary["kept"]["2026-11-12"] == (
        "2026-11-12 is not certified: its quality report is missing or not certified"
    )
    assert "never ran" in summary["kept"]["2026-11-16"]
    assert "not materialized" in summary["kept"]["2026-11-17"]
    assert "newest 3" in summary["kept"]["2026-11-18"]
    assert not (archive_env / "kis-1" / "trades" / "20261113").exists()
    assert (archive_env / "kis-1" / "trades" / "20261112").exists()
    assert (archive_env / "kis-1" / "trades" / "20261116").exists()
    # every decision on a day older than the window is in the log; the window's days are not
    logged = {(e["day"], e["action"]) for e in retention_log.read(data)}
    assert logged == {
        ("2026-11-12", "kept"), ("2026-11-13", "deleted"), ("2026-11-16", "kept"), ("2026-11-17", "kept")
    }
    stamps = {(e["as_of"], e["at"][:16]) for e in retention_log.read(data)}
    assert stamps == {("2026-11-20", "2026-11-20T19:00")}


def test_retention_without_as_of_counts_from_the_project_clocks_today(archive_env, monkeypatch):
    make_day(archive_env, date(2026, 11, 13))
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL)))
    result = archive_retention_job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(archive=ArchiveResource(archive_dir=str(archive_env))),
        run_config={"ops": {"archive_retention": {"config": {"keep_trading_days": 3, "dry_run": True}}}},
    )
    summary = result.output_for_node("archive_retention")
    # three trading days back from 2026-11-20 (Friday): 11-18, 11-19, 11-20
    assert (summary["as_of"], summary["oldest_kept_trading_day"]) == ("2026-11-20", "2026-11-18")


def test_a_holiday_inside_the_window_counts_trading_days_not_weekdays(tmp_path):
    """As of Tue 2026-09-29, the newest 3 trading days are 09-29, 09-28 and 09-23: Chuseok (09-24,
    09-25) and the weekend are not trading days. Counting weekdays would reach back only to 09-25
    and delete 09-23."""
    root = tmp_path / "archive"
    for day in (21, 22, 23, 28, 29):
        make_day(root, date(2026, 9, day))
    plan = retention.plan(
        [root], date(2026, 9, 29), lambda d: CERTIFIED, krx_calendar(), keep_trading_days=3
    )
    assert plan.oldest_kept_trading_day == date(2026, 9, 23)
    assert [d.day for d in plan.to_delete] == [date(2026, 9, 21), date(2026, 9, 22)]
    retention.apply(plan)
    left = sorted(p.name for p in (root / "kis-1" / "trades").iterdir())
    assert left == ["20260923", "20260928", "20260929"]


def test_the_schedule_is_on_by_default_and_skips_closed_days():
    assert archive_retention_schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    def tick(at: datetime):
        return archive_retention_schedule(dg.build_schedule_context(scheduled_execution_time=at))

    trading = tick(datetime(2026, 9, 23, 19, 0, tzinfo=SEOUL))
    assert isinstance(trading, dg.RunRequest) and trading.run_key == "retention:20260923"
    holiday = tick(datetime(2026, 9, 24, 19, 0, tzinfo=SEOUL))  # a Thursday: Chuseok
    assert isinstance(holiday, dg.SkipReason) and "not a KRX trading day" in holiday.skip_message
    assert "Chuseok" in holiday.skip_message
