"""The pre-flight job fails with the list of what is wrong, alerts, and a missing API key opens
the broker's breaker for good (dormant until a person resumes)."""

import dagster as dg

from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines_tests.ops.test_governance import Receiver


def test_missing_api_key_fails_the_job_alerts_and_trips_the_breaker(redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    try:
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
            result = preflight_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        message = result.failure_data_for_node("preflight_checks").error.message
        assert "kis credentials: PermissionError: missing KIS_APP_KEY, KIS_APP_SECRET" in message
        assert "kis reachable: KIS_BASE_URL is not set" in message
        assert [b["kind"] for b in receiver.bodies] == ["preflight_failed"]
        governance = RecoveryGovernance(redis_server.client(), "kis")
        assert governance.breaker().state.value == "PERMANENT_OPEN"
        assert not governance.verdict().allowed  # dormant
    finally:
        receiver.close()
