"""Governance in a real Redis: retries with backoff, dormant mode, PERMANENT_OPEN, resume, the
status document and the CLI around them. (Their alerts: test_incident_alerts.py.)"""

import json
import os
import subprocess
import sys
from datetime import date, datetime

import pytest

from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.recovery_window import Window
from stock_pipelines.ops.status import status_document
from stock_pipelines.resilience.breaker import CircuitBreaker, State
from stock_pipelines.resilience.flags import AUTO_RECOVERY, FeatureFlags
from stock_pipelines.resilience.state_store import RedisStateStore

DAY = date(2026, 11, 20)
WINDOW = Window(
    "c1", DAY, datetime(2026, 11, 20, 10, 0, tzinfo=SEOUL), datetime(2026, 11, 20, 10, 5, tzinfo=SEOUL)
)


@pytest.fixture
def env(redis_server, monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 20, 10, 0, 30, tzinfo=SEOUL)))
    return redis_server


class Clock:
    def __init__(self, t: float = 1_763_600_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_failed_runs_back_off_and_queue_a_retry_then_ten_make_it_dormant(env):
    client, clock = env.client(), Clock()
    gov = RecoveryGovernance(client, "kis", clock=clock)
    retry = gov.record_run("run-1", False, WINDOW, "boom")
    assert retry is not None and retry.attempt == 2
    assert retry.run_key == WINDOW.run_key.replace(":a1", ":a2")
    assert clock.t <= retry.not_before.timestamp() <= clock.t + 5.0  # full jitter under 5 s
    assert [w.run_key for w in gov.due_retries()] == [retry.run_key]
    verdict = gov.verdict()
    assert not verdict.allowed and verdict.reason.startswith("backing off after 1 failed")
    for n in range(2, 11):
        clock.t += 700  # past any backoff (cap 10 min)
        last = gov.record_run(f"run-{n}", False, WINDOW, f"boom {n}")
    assert last.attempt == 2 and not gov.verdict().allowed  # queued, held while dormant
    verdict = gov.verdict()
    assert not verdict.allowed and verdict.reason.startswith("dormant since")
    assert "10 consecutive failed recoveries" in gov.dormant_state().reason
    assert gov.history(1)[0]["run_id"] == "run-10"


def test_an_authorization_failure_opens_the_breaker_permanently_dormant_until_resume(env):
    client, clock = env.client(), Clock()
    gov = RecoveryGovernance(client, "kis", clock=clock)
    gov.breaker().record_failure(BrokerAuthError("KIS refused a freshly issued token"))
    assert gov.breaker().state is State.PERMANENT_OPEN
    verdict = gov.verdict()
    assert not verdict.allowed and "PERMANENT_OPEN" in verdict.reason
    assert verdict.breaker_state == "PERMANENT_OPEN"
    clock.t += 3600
    assert not gov.verdict().allowed  # never by itself
    with pytest.raises(ValueError, match="reason"):
        gov.resume("alice", " ")
    with pytest.raises(ValueError, match="name"):
        gov.resume("automatic", "because")
    retry = gov.record_run("run-auth", False, WINDOW, "kis refused the credentials")
    assert retry.not_before.timestamp() <= clock.t + 5  # queued (held while dormant)
    clock.t += 100
    result = gov.resume("alice", "key rotated")
    [due] = gov.due_retries()
    assert due.run_key == retry.run_key and due.not_before.timestamp() == clock.t  # due at once
    assert result == {
        "breakers_reset": {"kis": "CLOSED"},
        "dormant": False,
        "resumed_by": "alice",
        "reason": "key rotated",
    }
    assert gov.verdict().allowed


def test_breaker_open_then_half_open_then_closed_as_the_sensor_sees_it(env):
    client, clock = env.client(), Clock()
    gov = RecoveryGovernance(client, "kis", clock=clock)
    # the breaker the runs use (recovery.sources.breaker_for), on the test's clock
    breaker = CircuitBreaker("broker:kis", RedisStateStore(client), clock=clock)
    for _ in range(3):
        breaker.record_failure(RuntimeError("503"))
    verdict = gov.verdict()
    assert verdict.breaker_state == "OPEN" and verdict.breaker_retry_at is not None
    clock.t += 61
    assert breaker.try_acquire()  # the trial
    assert gov.verdict().breaker_state == "HALF_OPEN"
    breaker.record_success()
    assert gov.verdict().breaker_state == "CLOSED"


def test_status_document_and_cli(env, tmp_path):
    client = env.client()
    from stock_pipelines.heartbeat import Heartbeat, HeartbeatStore

    now = datetime(2026, 11, 20, 10, 0, 30, tzinfo=SEOUL)
    store = HeartbeatStore(client)
    store.beat(Heartbeat("c-live", "h", 1, now, now, ("005930",)))
    store.beat(Heartbeat("c-dead", "h", 2, now.replace(second=0), now.replace(second=0), ("005930",)))
    FeatureFlags(client).set(AUTO_RECOVERY, False)
    gov = RecoveryGovernance(client, "kis")
    gov.record_run("r1", True, WINDOW, json.dumps({"windows_recovered": 3, "rest_bars": 120}))
    doc = status_document(client, now)
    assert doc["collectors"]["c-live"]["state"] == "ok"
    assert doc["collectors"]["c-dead"]["state"] == "stale" and doc["collectors"]["c-dead"]["age_s"] == 30.0
    assert doc["breakers"]["kis"] == {
        "state": "CLOSED",
        "consecutive_failures": 0,
        "reason": "",
        "changed_at": None,
        "changed_by": "automatic",
    }
    assert doc["kill_switches"][AUTO_RECOVERY] == {"enabled": False, "source": "redis"}
    assert doc["dormant"]["dormant"] is False
    assert json.loads(doc["last_recovery_runs"][0]["detail"]) == {"windows_recovered": 3, "rest_bars": 120}
    assert doc["ok"] is True
    assert doc["calendar"] == {"supported_until": "2028-12-31", "days_left": 772, "warning": None}
    near_the_end = status_document(client, datetime(2028, 11, 20, 10, 0, tzinfo=SEOUL))
    assert near_the_end["calendar"]["days_left"] == 41
    assert near_the_end["calendar"]["warning"].startswith(
        "KRX calendar supported through 2028-12-31: 41 days left, below 60: extend SUPPORTED_LAST_DAY"
    )

    cli_env = {**os.environ, "REDIS_URL": env.url}
    out = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "status"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["redis"] == "ok"
    assert json.loads(out.stdout)["calendar"]["days_left"] == 772  # the project clock: 2026-11-20
    gov.guard.enter("test")
    out = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "status"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and json.loads(out.stdout)["dormant"]["dormant"] is True
    bad = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "resume", "--reason", " "],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "stock-pipelines resume: error: --reason must say why it is safe to resume"
    )
    good = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "resume", "--reason", "checked", "--by", "bob"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0 and json.loads(good.stdout)["dormant"] is False


def test_the_verdict_reports_the_named_brokers_breaker_and_the_decision_covers_every_broker(env, monkeypatch):
    """The deployment's broker is a value the caller passes (the broker resource's name): the
    environment's STOCK_PIPELINES_BROKER is not consulted."""
    client = env.client()
    monkeypatch.setenv("STOCK_PIPELINES_BROKER", "kiwoom")
    assert RecoveryGovernance(client).decision().allowed
    with pytest.raises(ValueError, match=r"name its broker"):
        RecoveryGovernance(client).verdict()
    with pytest.raises(ValueError, match=r"^no broker named"):
        RecoveryGovernance(client).breaker()
    RecoveryGovernance(client).breaker("kiwoom").trip_permanently("kiwoom key revoked")
    kis, kiwoom = RecoveryGovernance(client, "kis").verdict(), RecoveryGovernance(client, "kiwoom").verdict()
    assert kis.breaker_state == "CLOSED" and kiwoom.breaker_state == "PERMANENT_OPEN"
    decision = RecoveryGovernance(client).decision()
    assert not decision.allowed and not kis.allowed  # one broker's PERMANENT_OPEN: dormant for all
    assert "kiwoom" in decision.reason, decision.reason
