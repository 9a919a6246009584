"""minute_bars' freshness on the KRX calendar: which day is due certified when, and the check that
says whether it is (evaluated in a real run of its job against a real instance's records)."""

from datetime import date, datetime, time

import dagster as dg
import pytest

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.quality.freshness import Due, due_day

FRIDAY, MONDAY = date(2026, 11, 20), date(2026, 11, 23)
CSAT_DAY = date(2026, 11, 19)  # the session closes at 16:30


def at(day: date, hh_mm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hh_mm), SEOUL)


@pytest.mark.parametrize(
    ("now", "due", "deadline"),
    [
        (at(MONDAY, "16:29"), FRIDAY, at(FRIDAY, "16:30")),  # before Monday's deadline: Friday
        (at(MONDAY, "16:30"), MONDAY, at(MONDAY, "16:30")),
        (at(date(2026, 11, 22), "12:00"), FRIDAY, at(FRIDAY, "16:30")),  # Sunday: Friday
        (at(CSAT_DAY, "16:45"), date(2026, 11, 18), at(date(2026, 11, 18), "16:30")),  # CSAT: not yet
        (at(CSAT_DAY, "17:30"), CSAT_DAY, at(CSAT_DAY, "17:30")),
        (at(date(2026, 6, 3), "18:00"), date(2026, 6, 2), at(date(2026, 6, 2), "16:30")),  # election day
    ],
)
def test_the_day_due_is_the_latest_trading_day_an_hour_past_its_close(now, due, deadline):
    assert due_day(krx_calendar(), now) == Due(due, deadline)


def report(instance: dg.DagsterInstance, day: date, certified: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "quality_report", partition=day.isoformat(), metadata={"certified": certified}
        )
    )


def test_the_freshness_check_reads_the_due_days_report_at_the_project_clocks_now(monkeypatch):
    from stock_pipelines.definitions import defs
    from stock_pipelines.defs.checks.freshness import CERTIFIED_IN_TIME

    job = defs.resolve_job_def("minute_bars_freshness_job")
    end_of_day = defs.resolve_job_def("end_of_day_job").asset_layer.asset_graph.asset_check_keys
    assert CERTIFIED_IN_TIME not in {key.name for key in end_of_day}  # it runs at the deadline, not before
    graph = defs.resolve_asset_graph()
    (check,) = [key for key in graph.asset_check_keys if key.name == CERTIFIED_IN_TIME]
    # on its own unpartitioned asset, which nothing materializes: no partition of minute_bars lists it
    assert check.asset_key.to_user_string() == "certification_deadline"
    deadline = graph.get(check.asset_key)
    assert not deadline.is_materializable and deadline.partitions_def is None

    def evaluate(instance, now: datetime) -> dg.AssetCheckEvaluation:
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(now))  # the project clock, pinned
        result = job.execute_in_process(instance=instance)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == CERTIFIED_IN_TIME and evaluation.partition is None
        return evaluation

    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, FRIDAY, certified=True)
        monday_noon = evaluate(instance, at(MONDAY, "12:00"))
        assert monday_noon.passed
        assert monday_noon.description == "2026-11-20: certified (due by 2026-11-20 16:30 KST)"

        overdue = evaluate(instance, at(MONDAY, "16:45"))
        assert not overdue.passed and overdue.severity == dg.AssetCheckSeverity.ERROR
        assert overdue.description == (
            "2026-11-23 has no quality_report, due by 2026-11-23 16:30 KST (15 min ago)"
        )
        assert overdue.metadata["due_day"].value == "2026-11-23"

        report(instance, MONDAY, certified=False)  # the day's report exists but a check failed
        failing = evaluate(instance, at(MONDAY, "16:50"))
        assert not failing.passed and failing.description.startswith("2026-11-23: NOT CERTIFIED")

        report(instance, MONDAY, certified=True)  # recovered and re-reported
        assert evaluate(instance, at(MONDAY, "17:30")).passed


def test_the_freshness_schedule_runs_the_check_at_both_deadlines():
    from stock_pipelines.defs.schedules import minute_bars_freshness_schedule

    assert minute_bars_freshness_schedule.cron_schedule == "30 16,17 * * 1-5"
    assert minute_bars_freshness_schedule.execution_timezone == "Asia/Seoul"
    context = dg.build_schedule_context(scheduled_execution_time=at(CSAT_DAY, "17:30"))
    request = minute_bars_freshness_schedule(context)
    assert request.run_key == "freshness:202611191730"
