"""The pre-flight tests the feed: against the real `stock-pipelines sim exchange` process it
subscribes a test symbol and waits for the acknowledgement and a PINGPONG; the simulator's
`drop_ws` and `unauthorized` faults fail it with a clear reason, and a failing pre-flight opens the
pre-flight incident (one alert), resolved by the next pre-flight that passes. Memory and CPU
headroom are checked with their thresholds."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg
import httpx
import pytest

from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.feed_probe import FeedProbeError, probe_kis_feed
from stock_pipelines.ops.headroom import check_cpu, check_memory
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.ops.webhook_receiver import Receiver

PRE_OPEN = datetime(2026, 12, 1, 8, 30, tzinfo=SEOUL)  # a Tuesday, a KRX trading day
APP_KEY, APP_SECRET = "PFk3yFeedProbe01", "PFs3cretFeedProbe02"


@pytest.fixture
def exchange(monkeypatch):
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(PRE_OPEN))  # the simulator serves that day
    with run_exchange_process(["--symbols", "4"]) as url:
        yield url


def fault(url: str, mode: str, enabled: bool = True) -> None:
    httpx.post(f"{url}/admin/faults", json={"mode": mode, "enabled": enabled}, timeout=10).raise_for_status()


def kis_source(url) -> FeedSource:
    return FeedSource("primary", "kis", str(url), url.ws_url, (AppKey(APP_KEY, APP_SECRET),))


def test_the_probe_sees_the_acknowledgement_and_a_pingpong_and_names_a_dropped_socket(exchange):
    detail = probe_kis_feed(kis_source(exchange), "005930")
    assert detail.startswith("005930 subscribed and PINGPONG answered in ")
    fault(exchange, "drop_ws")
    with pytest.raises(FeedProbeError, match=r"the server closed the WebSocket \(code 1011\) before the "):
        probe_kis_feed(kis_source(exchange), "005930", timeout_s=10)


def test_a_probe_without_an_answer_times_out_naming_the_step(exchange):
    fault(exchange, "stall_ws")  # connected, acknowledged, but the stream (and its PINGPONG) is silent
    with pytest.raises(FeedProbeError, match=r"^no PINGPONG within 3 s$"):
        probe_kis_feed(kis_source(exchange), "005930", timeout_s=3)


@pytest.fixture
def job_env(exchange, redis_server, monkeypatch, tmp_path):
    receiver = Receiver()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("STOCK_PIPELINES_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("STOCK_PIPELINES_BROKER", "kis")
    monkeypatch.setenv("STOCK_PIPELINES_MAX_LOAD_PER_CPU", "1000")  # this test machine is shared
    monkeypatch.setenv("STOCK_PIPELINES_MIN_AVAILABLE_MEMORY_MB", "1")
    monkeypatch.setenv("KIS_BASE_URL", str(exchange))
    monkeypatch.setenv("KIS_APP_KEY", APP_KEY)
    monkeypatch.setenv("KIS_APP_SECRET", APP_SECRET)
    for var in ("KIWOOM_BASE_URL", "KIS_WS_URL", "KIS_SECONDARY_APP_KEY"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield exchange, receiver
    finally:
        receiver.close()


def run_preflight_job(instance) -> dg.ExecuteInProcessResult:
    return preflight_job.execute_in_process(
        instance=instance, raise_on_error=False, resources=resources(alerts=AlertResource())
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return result.failure_data_for_node("preflight_checks").error.message


def test_a_dropped_feed_fails_the_preflight_opens_one_incident_and_a_pass_resolves_it(job_env):
    exchange, receiver = job_env
    with dg.instance_for_test() as instance:
        fault(exchange, "drop_ws")
        failed = run_preflight_job(instance)
        assert not failed.success
        assert (
            "kis primary feed: FeedProbeError: the server closed the WebSocket (code 1011) before the "
            "subscribe acknowledgement" in failure_message(failed)
        )
        assert receiver.events() == [("firing", "preflight_failed", "preflight")]
        assert "the server closed the WebSocket (code 1011)" in receiver.bodies[0]["message"]
        assert not run_preflight_job(instance).success  # still failing: the same incident, no new alert
        assert len(receiver.bodies) == 1
        fault(exchange, "drop_ws", enabled=False)
        passed = run_preflight_job(instance)
        assert passed.success, failure_message(passed)
        checks = {c["name"]: c for c in passed.output_for_node("preflight_checks")["checks"]}
        assert checks["kis primary feed"]["detail"].startswith("005930 subscribed and PINGPONG answered")
        assert checks["memory"]["ok"] and checks["cpu"]["ok"]
        assert receiver.events() == [
            ("firing", "preflight_failed", "preflight"),
            ("resolved", "preflight_failed", "preflight"),
        ]
    payload = json.dumps(receiver.bodies)
    assert APP_KEY not in payload and APP_SECRET not in payload and "secret-token" not in payload


def test_an_unauthorized_broker_fails_the_preflight_with_the_reason(job_env):
    exchange, receiver = job_env
    fault(exchange, "unauthorized")
    with dg.instance_for_test() as instance:
        failed = run_preflight_job(instance)
    assert not failed.success
    message = failure_message(failed)
    assert "kis token: PermissionError: a quotation call for 005930 with the token failed: KIS token refused (" in message, message
    assert receiver.events() == [("firing", "preflight_failed", "preflight")]
    assert APP_KEY not in json.dumps(receiver.bodies)


def test_memory_and_cpu_headroom_fail_below_their_thresholds():
    assert "MB available of" in check_memory(1)
    with pytest.raises(MemoryError, match=r"MB available of \d+ MB, need 1e\+12 MB"):
        check_memory(1e12)
    assert "per CPU" in check_cpu(1e6)
    with pytest.raises(OSError, match=r"per CPU \(\d+ CPUs\) over the limit -1"):
        check_cpu(-1)
