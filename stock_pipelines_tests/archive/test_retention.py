"""Retention: deletes only old, materialized, checked and certified raw days, counting trading
days; keeps and explains everything else, and logs every decision where the soak's figures read it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest

from stock_pipelines.archive import retention, retention_log
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.jobs.retention import archive_retention_job, unsettled_checks
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


def materialize_checked(instance: dg.DagsterInstance, day: str) -> None:
    """raw_ticks with its checks, as the end-of-day run materializes it."""
    assert dg.materialize(
        [raw_ticks, *raw_ticks_checks], partition_key=day, instance=instance, resources=resources()
    ).success


def test_plan_and_apply_delete_exactly_the_eligible_days(tmp_path):
    root = tmp_path / "archive"
    days = [date(2026, 11, d) for d in (11, 12, 13, 16, 17, 18, 19, 20)]
    for day in days:
        make_day(root, day)
    make_day(root, date(2026, 11, 13), "kiwoom-1")
    (root / "kis-1" / "trades" / "20261114").mkdir()  # trades on a Saturday: kept for a person
    (root / "kis-1" / "trades" / "20261114" / "09_00.jsonl").write_text("{}\n")
    # a Sunday with only the collectors' heartbeats: no partition reads them, so they go
    (root / "kis-1" / "system" / "20261115.jsonl").write_text('{"v":1,"event":"HEARTBEAT"}\n')
    (root / "kiwoom-1" / "system" / "20261115.jsonl").write_text('{"v":1,"event":"HEARTBEAT"}\n')
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
    assert [d.day for d in plan.to_delete] == [date(2026, 11, 12), date(2026, 11, 13), date(2026, 11, 15)]
    assert [d.trading_day for d in plan.to_delete] == [True, True, False]
    reasons = {d.day: d.reason for d in plan.kept}
    assert "not a KRX trading day, yet it has trades" in reasons[date(2026, 11, 14)]
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
    assert not (root / "kis-1" / "system" / "20261115.jsonl").exists()
    assert not (root / "kiwoom-1" / "system" / "20261115.jsonl").exists()


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
        materialize_checked(instance, day)
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


def recovery_rebuild(instance: dg.DagsterInstance, day: str) -> None:
    """raw_ticks materialized again as a recovery run does it: without its checks (jobs/recovery.py)."""
    assert dg.materialize(
        [raw_ticks, *raw_ticks_checks],
        partition_key=day,
        instance=instance,
        selection=dg.AssetSelection.assets(raw_ticks).without_checks(),
        resources=resources(),
    ).success


def run_retention(instance: dg.DagsterInstance, archive: Path, as_of: str = "2026-11-20") -> dict:
    result = archive_retention_job.execute_in_process(
        instance=instance,
        resources=resources(archive=ArchiveResource(archive_dir=str(archive))),
        run_config={"ops": {"archive_retention": {"config": {"as_of": as_of, "keep_trading_days": 3}}}},
    )
    assert result.success
    return result.output_for_node("archive_retention")


def test_a_certified_day_rebuilt_by_a_recovery_run_still_goes_and_an_uncertified_one_stays(
    archive_env, monkeypatch
):
    """The full soak kept two certified days: a recovery run after their end of day had rebuilt
    raw_ticks without its checks. The day's verdict decides, not the newest materialization."""
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL)))
    data = archive_env.parent / "data"
    for day in (12, 13):
        make_day(archive_env, date(2026, 11, day))
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-11-12", "2026-11-13"):
        materialize_checked(instance, day)
        recovery_rebuild(instance, day)
    certify(data, date(2026, 11, 13))
    certify(data, date(2026, 11, 12), certified=False)
    newest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_ticks"), asset_partitions=["2026-11-13"]), limit=1
    ).records[0]
    evaluations = instance.get_records_for_run(
        newest.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    assert evaluations == []  # the newest materialization ran no raw_ticks check
    summary = run_retention(instance, archive_env)
    assert summary["deleted_days"] == ["2026-11-13"]
    assert summary["kept"]["2026-11-12"] == (
        "2026-11-12 is not certified: its quality report is missing or not certified"
    )
    assert not (archive_env / "kis-1" / "trades" / "20261113").exists()
    assert (archive_env / "kis-1" / "trades" / "20261112").exists()
    logged = {(e["day"], e["action"]) for e in retention_log.read(data)}
    assert logged == {("2026-11-12", "kept"), ("2026-11-13", "deleted")}


def test_a_blocking_check_failed_after_the_certified_report_keeps_the_day(archive_env, monkeypatch):
    """An end-of-day re-run that fails a blocking minute_bars check writes no report: the older
    certified report is no longer the day's verdict."""
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL)))
    data = archive_env.parent / "data"
    make_day(archive_env, date(2026, 11, 13))
    instance = dg.DagsterInstance.ephemeral()
    materialize_checked(instance, "2026-11-13")
    certify(data, date(2026, 11, 13))
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("minute_bars"),
            check_name="minute_bars_day_volume",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            partition="2026-11-13",
        )
    )
    summary = run_retention(instance, archive_env)
    assert summary["deleted_days"] == []
    assert summary["kept"]["2026-11-13"] == (
        "2026-11-13 is not certified: minute_bars_day_volume not passed after its certified report"
    )
    assert (archive_env / "kis-1" / "trades" / "20261113").exists()


def test_closed_days_system_logs_go_in_their_own_log_action(archive_env, monkeypatch):
    """Collectors beat on weekends too: those system logs are deleted once older than the window,
    logged as a closed day (not a deleted trading day, which must be certified)."""
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL)))
    data = archive_env.parent / "data"
    system = archive_env / "kis-1" / "system"
    system.mkdir(parents=True)
    for name in ("20261114", "20261115", "20261121"):  # Sat, Sun, and a Saturday after as_of
        (system / f"{name}.jsonl").write_text('{"v":1,"event":"HEARTBEAT"}\n')
    summary = run_retention(dg.DagsterInstance.ephemeral(), archive_env)
    assert summary["deleted_days"] == []
    assert summary["deleted_closed_days"] == ["2026-11-14", "2026-11-15"]
    assert sorted(p.name for p in system.iterdir()) == ["20261121.jsonl"]
    logged = {(e["day"], e["action"]) for e in retention_log.read(data)}
    assert logged == {("2026-11-14", "deleted_closed_day"), ("2026-11-15", "deleted_closed_day")}


def test_a_check_not_finished_since_the_report_leaves_the_verdict_in_doubt():
    rows = [
        {"check": "a_passed", "status": "passed", "severity": ""},
        {"check": "b_warned", "status": "failed", "severity": "WARN"},
        {"check": "c_failed", "status": "failed", "severity": "ERROR"},
        {"check": "d_rerun_in_progress", "status": "planned", "severity": ""},
        {"check": "e_skipped", "status": "skipped", "severity": ""},
        {"check": "f_not_in_the_report", "status": "never ran", "severity": ""},
    ]
    assert unsettled_checks(rows) == ["c_failed", "d_rerun_in_progress", "e_skipped"]


def test_a_scheduled_run_that_starts_after_midnight_keeps_the_window_of_its_tick(archive_env, monkeypatch):
    """A retention run queued behind the evening's runs may start the next morning: the window is
    counted from the 19:00 tick's day, or the next day would count as one of the days kept."""
    request = archive_retention_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 19, 0, tzinfo=SEOUL))
    )
    assert isinstance(request, dg.RunRequest)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 23, 3, 20, tzinfo=SEOUL)))  # Monday
    config = request.run_config["ops"]["archive_retention"]["config"]
    result = archive_retention_job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(archive=ArchiveResource(archive_dir=str(archive_env))),
        run_config={"ops": {"archive_retention": {"config": {**config, "keep_trading_days": 3, "dry_run": True}}}},
    )
    summary = result.output_for_node("archive_retention")
    # 11-18, 11-19, 11-20 kept as of Friday's tick; from Monday's clock it would have been 11-19 on
    assert (summary["as_of"], summary["oldest_kept_trading_day"]) == ("2026-11-20", "2026-11-18")
