"""The pre-flight job fails with the list of what is wrong, alerts, and a missing API key opens
the broker's breaker for good (dormant until a person resumes)."""

from datetime import datetime

import dagster as dg

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.ops.preflight_run import failure_message, preflight_resources, run_preflight_job
from stock_pipelines_tests.ops.webhook_receiver import Receiver


def test_missing_api_key_fails_the_job_alerts_and_trips_the_breaker(redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    try:
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 12, 1, 8, 30, tzinfo=SEOUL)))
        # the bound broker has no credentials and no URL (empty fields: no environment fallback)
        bound = preflight_resources(redis_server.url, tmp_path, receiver.url, broker="kis", base_url="",
                                    app_key="", app_secret="")
        with dg.instance_for_test() as instance:
            result = run_preflight_job(instance, bound)
        assert not result.success
        message = failure_message(result)
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
        with run_exchange(symbols=2, credentials={"pf-key": "pf-secret"}) as url:
            bound = preflight_resources(redis_server.url, tmp_path, receiver.url, broker="kis",
                                        base_url=str(url), app_key="pf-key", app_secret="pf-secret")
            with dg.instance_for_test() as instance:
                result = run_preflight_job(instance, bound)
        assert result.success, result.all_events
        report = result.output_for_node("preflight_checks")
        assert report["ok"] and report["warnings"][0].startswith(
            "KRX calendar supported through 2028-12-31: 41 days left, below 60"
        )
        checks = {check["name"] for check in report["checks"]}
        assert {"kis credentials", "kis reachable", "kis token", "kis primary feed"} <= checks
        assert receiver.events() == [("notice", "preflight_warning", "calendar")]
        assert receiver.bodies[0]["text"].startswith(
            "[stock_pipelines] NOTICE preflight_warning calendar: KRX calendar supported through 2028-12-31: "
            "41 days left, below 60"
        )
    finally:
        receiver.close()
