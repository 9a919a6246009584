"""The pre-flight job fails with the list of what is wrong, alerts, and a missing API key opens
the broker's breaker for good (dormant until a person resumes)."""

from datetime import datetime

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.ops.webhook_receiver import Receiver


def test_missing_api_key_fails_the_job_alerts_and_trips_the_breaker(redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    try:
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 12, 1, 8, 30, tzinfo=SEOUL)))
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("STOCK_PIPELINES_ALERT_WEBHOOK_URL", receiver.url)
        for var in (
            "KIS_APP_KEY",
            "KIS_APP_SECRET",
            "KIS_BASE_URL",
            "KIWOOM_BASE_URL",
            "STOCK_PIPELINES_BROKER",
        ):
            monkeypatch.delenv(var, raising=False)
        with dg.instance_for_test() as instance:
            result = preflight_job.execute_in_process(instance=instance, raise_on_error=False, resources=resources(alerts=AlertResource()))
        assert not result.success
        message = result.failure_data_for_node("preflight_checks").error.message
        assert "kis credentials: PermissionError: missing KIS_APP_KEY, KIS_APP_SECRET" in message
        assert "kis reachable: KIS_BASE_URL is not set" in message
        assert receiver.events() == [("firing", "preflight_failed", "preflight")]
        governance = RecoveryGovernance(redis_server.client(), "kis")
        assert governance.breaker().state.value == "PERMANENT_OPEN"
        assert not governance.verdict().allowed  # dormant
    finally:
        receiver.close()


def test_a_calendar_running_out_is_alerted_and_the_job_still_passes(redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    try:
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2028, 11, 20, 8, 30, tzinfo=SEOUL)))
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
        monkeypatch.setenv("STOCK_PIPELINES_ALERT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("STOCK_PIPELINES_BROKER", "kis")
        monkeypatch.setenv("STOCK_PIPELINES_MAX_LOAD_PER_CPU", "1000")  # this test machine is shared
        monkeypatch.setenv("KIS_APP_KEY", "pf-key")
        monkeypatch.setenv("KIS_APP_SECRET", "pf-secret")
        monkeypatch.delenv("KIWOOM_BASE_URL", raising=False)
        with run_exchange(symbols=2, credentials={"pf-key": "pf-secret"}) as url:
            monkeypatch.setenv("KIS_BASE_URL", str(url))
            with dg.instance_for_test() as instance:
                result = preflight_job.execute_in_process(instance=instance, raise_on_error=False, resources=resources(alerts=AlertResource()))
        assert result.success, result.all_events
        report = result.output_for_node("preflight_checks")
        assert report["ok"] and report["warnings"][0].startswith(
            "KRX calendar supported through 2028-12-31: 41 days left, below 60"
        )
        assert receiver.events() == [("notice", "preflight_warning", "calendar")]
        assert receiver.bodies[0]["text"].startswith(
            "[stock_pipelines] NOTICE preflight_warning calendar: KRX calendar supported through 2028-12-31: "
            "41 days left, below 60"
        )
    finally:
        receiver.close()
