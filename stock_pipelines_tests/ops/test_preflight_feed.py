"""The pre-flight tests the feed: against the real `stock-pipelines sim exchange` process it
subscribes a test symbol and waits for the acknowledgement and a PINGPONG (KIS) or a PING
(Kiwoom); the simulator's `drop_ws` and `unauthorized` faults fail it with a clear reason (a
fault aimed at Kiwoom alone fails the Kiwoom probe and leaves the KIS one passing), and a failing pre-flight opens the
pre-flight incident (one alert), resolved by the next pre-flight that passes. Memory and CPU
headroom are checked with their thresholds."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg
import httpx
import pytest

from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.feed_probe import FeedProbeError, probe_kis_feed
from stock_pipelines.ops.feed_probe_kiwoom import probe_kiwoom_feed
from stock_pipelines.ops.headroom import check_cpu, check_memory
from stock_pipelines.ops.preflight import feed_checks
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.ops.preflight_run import failure_message, preflight_resources, run_preflight_job
from stock_pipelines_tests.ops.webhook_receiver import Receiver

PRE_OPEN = datetime(2026, 12, 1, 8, 30, tzinfo=SEOUL)  # a Tuesday, a KRX trading day
APP_KEY, APP_SECRET = "PFk3yFeedProbe01", "PFs3cretFeedProbe02"


@pytest.fixture
def exchange(monkeypatch):
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(PRE_OPEN))  # the simulator serves that day
    with run_exchange_process(["--symbols", "4"]) as url:
        yield url


def fault(url: str, mode: str, enabled: bool = True, target: str = "all") -> None:
    httpx.post(
        f"{url}/admin/faults", json={"mode": mode, "enabled": enabled, "target": target}, timeout=10
    ).raise_for_status()


def kis_source(url) -> FeedSource:
    return FeedSource("primary", "kis", str(url), url.ws_url, (AppKey(APP_KEY, APP_SECRET),))


def kiwoom_source(url) -> FeedSource:
    return FeedSource("primary", "kiwoom", str(url), url.kiwoom_ws_url, (AppKey(APP_KEY, APP_SECRET),))


def both_brokers_env(url) -> dict[str, str]:
    return {"KIS_BASE_URL": str(url), "KIS_APP_KEY": APP_KEY, "KIS_APP_SECRET": APP_SECRET,
            "KIWOOM_BASE_URL": str(url), "KIWOOM_APP_KEY": APP_KEY, "KIWOOM_SECRET_KEY": APP_SECRET}


def sim_stats(url) -> dict:
    return httpx.get(f"{url}/admin/stats", timeout=10).json()


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


def test_the_kiwoom_probe_logs_in_registers_and_echoes_a_ping_and_names_a_dropped_socket(exchange, tmp_path):
    detail = probe_kiwoom_feed(kiwoom_source(exchange), "005930", token_dir=tmp_path)
    assert detail.startswith("005930 registered and PING answered in ")
    assert sim_stats(exchange)["kiwoom_ws_ping_echoes"] >= 1
    assert list(tmp_path.glob("kiwoom-*.json")), "the token went through the token cache the collector uses"
    fault(exchange, "drop_ws", target="kiwoom")
    with pytest.raises(FeedProbeError, match=r"^the server closed the WebSocket \(code 1011\) before the LOGIN$"):
        probe_kiwoom_feed(kiwoom_source(exchange), "005930", timeout_s=10, token_dir=tmp_path)
    checks = {check.name: check for check in feed_checks(both_brokers_env(exchange), "005930", tmp_path)}
    assert sorted(checks) == ["kis primary feed", "kiwoom primary feed"]
    assert checks["kis primary feed"].ok, checks["kis primary feed"].detail
    assert not checks["kiwoom primary feed"].ok
    assert checks["kiwoom primary feed"].detail.startswith("FeedProbeError: the server closed the WebSocket (code 1011)")


def test_a_refused_kiwoom_login_fails_its_probe_and_the_kis_probe_still_passes(exchange, tmp_path):
    fault(exchange, "unauthorized", target="kiwoom")
    checks = {check.name: check for check in feed_checks(both_brokers_env(exchange), "005930", tmp_path)}
    assert checks["kis primary feed"].ok, checks["kis primary feed"].detail
    kiwoom = checks["kiwoom primary feed"]
    assert not kiwoom.ok
    assert kiwoom.detail.startswith("FeedProbeError: LOGIN refused: 8005 "), kiwoom.detail
    token = json.loads(next(tmp_path.glob("kiwoom-*.json")).read_text())["value"]
    assert APP_KEY not in kiwoom.detail and APP_SECRET not in kiwoom.detail and token not in kiwoom.detail


@pytest.fixture
def job_env(exchange, redis_server, tmp_path):
    receiver = Receiver()
    bound = preflight_resources(redis_server.url, tmp_path, receiver.url, broker="kis",
                                base_url=str(exchange), app_key=APP_KEY, app_secret=APP_SECRET)
    try:
        yield exchange, receiver, bound
    finally:
        receiver.close()


def test_a_dropped_feed_fails_the_preflight_opens_one_incident_and_a_pass_resolves_it(job_env):
    exchange, receiver, bound = job_env
    with dg.instance_for_test() as instance:
        fault(exchange, "drop_ws")
        failed = run_preflight_job(instance, bound)
        assert not failed.success
        assert (
            "kis primary feed: FeedProbeError: the server closed the WebSocket (code 1011) before the "
            "subscribe acknowledgement" in failure_message(failed)
        )
        assert receiver.events() == [("firing", "preflight_failed", "preflight")]
        assert "the server closed the WebSocket (code 1011)" in receiver.bodies[0]["message"]
        # still failing: the same incident, no new alert
        assert not run_preflight_job(instance, bound).success
        assert len(receiver.bodies) == 1
        fault(exchange, "drop_ws", enabled=False)
        passed = run_preflight_job(instance, bound)
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
    exchange, receiver, bound = job_env
    fault(exchange, "unauthorized")
    with dg.instance_for_test() as instance:
        failed = run_preflight_job(instance, bound)
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
