"""Retention: deletes only old, materialized, checked raw days; keeps and explains everything else."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg
import pytest

from stock_pipelines.archive import retention
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.jobs.retention import archive_retention_job
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines_tests.dagster_resources import resources

from .conftest import seoul_us, write_day

AS_OF = date(2026, 11, 20)  # keep 3 -> 11-20, 11-19, 11-18 are the newest trading days


def make_day(root, day: date, collector: str = "kis-1") -> None:
    write_day(root, collector, [("kis", "005930", seoul_us(10, 0, day=day), 100, 1, 1)])
    (root / collector / "system").mkdir(exist_ok=True)
    (root / collector / "system" / f"{day:%Y%m%d}.jsonl").write_text('{"v":1,"event":"UP"}\n')


def test_plan_and_apply_delete_exactly_the_eligible_days(tmp_path):
    root = tmp_path / "archive"
    days = [date(2026, 11, d) for d in (12, 13, 16, 17, 18, 19, 20)]
    for day in days:
        make_day(root, day)
    make_day(root, date(2026, 11, 13), "kiwoom-1")
    (root / "kis-1" / "trades" / "20261114").mkdir()  # a Saturday directory: not a trading day
    (root / "kis-1" / "trades" / "20261114" / "09_00.jsonl").write_text("{}\n")
    (root / "kis-1" / "trades" / "20261112" / "notes.txt").write_text("operator notes\n")  # not ours
    (root / "kis-1" / "trades" / "scratch").mkdir()  # not a day
    status = {
        date(2026, 11, 12): retention.DayStatus(True, True),
        date(2026, 11, 13): retention.DayStatus(True, True),
        date(2026, 11, 16): retention.DayStatus(True, False, "raw_ticks_schema failed"),
        date(2026, 11, 17): retention.DayStatus(False, False, "no materialization"),
    }
    plan = retention.plan([root], AS_OF, lambda d: status[d], krx_calendar(), keep_trading_days=3)
    assert plan.oldest_kept_trading_day == date(2026, 11, 18)
    assert [d.day for d in plan.to_delete] == [date(2026, 11, 12), date(2026, 11, 13)]
    reasons = {d.day: d.reason for d in plan.kept}
    assert "not a KRX trading day" in reasons[date(2026, 11, 14)]
    assert "checks have not passed: raw_ticks_schema failed" in reasons[date(2026, 11, 16)]
    assert "not materialized" in reasons[date(2026, 11, 17)]
    assert all("newest 3 trading days" in reasons[date(2026, 11, d)] for d in (18, 19, 20))

    report = retention.apply(plan)
    assert not (root / "kis-1" / "system" / "20261113.jsonl").exists()
    assert not (root / "kiwoom-1" / "trades" / "20261113").exists()
    assert (root / "kis-1" / "trades" / "20261112" / "notes.txt").exists()  # left, reported
    assert report.left == [root / "kis-1" / "trades" / "20261112" / "notes.txt"]
    for kept in ("20261114", "20261116", "20261117", "20261118", "20261120", "scratch"):
        assert (root / "kis-1" / "trades" / kept).exists()
    assert (root / "kis-1" / "system" / "20261116.jsonl").exists()


@pytest.mark.parametrize("keep", [2, 11])
def test_keep_outside_3_to_10_is_refused(tmp_path, keep):
    with pytest.raises(ValueError, match="3..10"):
        retention.plan([tmp_path], AS_OF, lambda d: retention.DayStatus(True, True), krx_calendar(), keep)


def test_retention_job_reads_materializations_and_checks_from_the_instance(archive_env):
    for day in (date(2026, 11, 13), date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)):
        make_day(archive_env, day)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(
        [raw_ticks, *raw_ticks_checks], partition_key="2026-11-13", instance=instance, resources=resources()
    ).success
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
    assert "never ran" in summary["kept"]["2026-11-16"]
    assert "not materialized" in summary["kept"]["2026-11-17"]
    assert "newest 3" in summary["kept"]["2026-11-18"]
    assert not (archive_env / "kis-1" / "trades" / "20261113").exists()
    assert (archive_env / "kis-1" / "trades" / "20261116").exists()


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
