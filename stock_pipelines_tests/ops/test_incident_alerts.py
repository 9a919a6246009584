"""Incident alerts against a real Redis and a real local webhook receiver: each kind fires once and
resolves once however often it is evaluated, a refused alert is delivered once after a retry,
several processes evaluating together alert once, and no secret reaches the webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from stock_pipelines.collector.status import write_status
from stock_pipelines.heartbeat.model import Heartbeat, Status
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.alerts import WebhookSender, scrub
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.incident_tick import incident_tick, record_preflight
from stock_pipelines.ops.incidents import freshness_observation
from stock_pipelines.ops.recovery_window import Window
from stock_pipelines.ops.status import status_document
from stock_pipelines.redis_conn import key
from stock_pipelines.resilience.breaker import CircuitBreaker
from stock_pipelines.resilience.state_store import RedisStateStore
from stock_pipelines_tests.ops.webhook_receiver import Receiver

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=SEOUL)
TICKS = 4  # evaluations while nothing changes: still one alert


class Setup:
    """The project clock the test moves, Redis, the receiver, and `tick()`: one evaluation."""

    def __init__(self, client, receiver: Receiver) -> None:
        self.client, self.receiver, self.now = client, receiver, T0
        self.sender = WebhookSender(receiver.url)
        self.extra = []  # observations from outside Redis (the archive freshness verdict)

    def tick(self, times: int = TICKS):
        for _ in range(times):
            result = incident_tick(self.client, self.sender, self.now, self.extra)
            self.now += timedelta(seconds=1)  # well inside a collector's 15 s staleness
        return result

    def epoch(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def setup(redis_server):
    receiver = Receiver()
    try:
        yield Setup(redis_server.client(), receiver)
    finally:
        receiver.close()


def beat(s: Setup, collector: str, at: datetime, status: Status = Status.OK) -> None:
    HeartbeatStore(s.client, clock=lambda: at).beat(Heartbeat(collector, "h", 1, T0, at, ("005930",), status=status))


def collector_down(s: Setup) -> Callable[[], None]:
    beat(s, "c1", s.now)
    s.now += timedelta(seconds=60)  # 12 intervals of 5 s without a beat
    return lambda: beat(s, "c1", s.now)


def collector_stalled(s: Setup) -> Callable[[], None]:
    beat(s, "c1", s.now, Status.STALLED)

    def clear():
        beat(s, "c1", s.now, Status.OK)

    return clear


def disk_low(s: Setup) -> Callable[[], None]:
    write_status(s.client, "c1", {"state": "streaming", "disk_low": True})
    return lambda: write_status(s.client, "c1", {"state": "streaming", "disk_low": False})


def archive_stale(s: Setup) -> Callable[[], None]:
    day = s.now.date().isoformat()
    s.extra = [freshness_observation(False, "c1 silent for 300 s", day)]

    def clear():
        s.extra = [freshness_observation(True, "", day)]

    return clear


def breaker_open(s: Setup) -> Callable[[], None]:
    breaker = CircuitBreaker("broker:kis", RedisStateStore(s.client), clock=s.epoch)
    for _ in range(3):
        breaker.record_failure(RuntimeError("HTTP 503"))

    def clear():
        s.now += timedelta(seconds=61)  # past the open interval: one trial call, which succeeds
        assert breaker.try_acquire()
        breaker.record_success()

    return clear


def breaker_permanent_open(s: Setup) -> Callable[[], None]:
    breaker = CircuitBreaker("broker:kis", RedisStateStore(s.client), clock=s.epoch)
    breaker.trip_permanently("KIS refused a freshly issued token")
    return lambda: breaker.reset("alice", "key rotated")


def dormant(s: Setup) -> Callable[[], None]:
    governance = RecoveryGovernance(s.client, "kis", clock=s.epoch)
    window = Window("c1", T0.date(), T0, T0 + timedelta(minutes=5))
    for n in range(10):
        s.now += timedelta(seconds=700)  # past any backoff: ten failures in a row
        governance.record_run(f"run-{n}", False, window, "boom")
    assert governance.dormant_state().dormant
    return lambda: governance.resume("alice", "broker fixed")


def preflight_failed(s: Setup) -> Callable[[], None]:
    record_preflight(s.client, False, "pre-flight failed: kis primary feed: no PINGPONG within 20 s", s.now)
    return lambda: record_preflight(s.client, True, "all 12 pre-flight checks passed", s.now)


CASES = {
    "collector_down": (collector_down, "c1"),
    "collector_stalled": (collector_stalled, "c1"),
    "disk_low": (disk_low, "c1"),
    "archive_stale": (archive_stale, "tick_archive"),
    "breaker_open": (breaker_open, "kis"),
    "breaker_permanent_open": (breaker_permanent_open, "kis"),
    "dormant": (dormant, "automation"),
    "preflight_failed": (preflight_failed, "preflight"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_incident_fires_once_and_resolves_once(setup, kind):
    make, subject = CASES[kind]
    setup.tick()
    assert setup.receiver.bodies == []  # nothing wrong yet
    clear = make(setup)
    setup.tick()
    assert setup.receiver.events() == [("firing", kind, subject)]
    firing = setup.receiver.bodies[0]
    assert firing["text"].startswith(f"[stock_pipelines] FIRING {kind} {subject}: ")
    assert firing["content"] == firing["text"]  # Slack reads text, Discord content
    clear()
    setup.tick()
    assert setup.receiver.events() == [("firing", kind, subject), ("resolved", kind, subject)]
    resolved = setup.receiver.bodies[1]
    assert resolved["incident_id"] == firing["incident_id"]
    assert resolved["text"].startswith(f"[stock_pipelines] RESOLVED {kind} {subject}: resolved (was: ")
    setup.tick()
    assert len(setup.receiver.bodies) == 2


def test_a_refused_alert_is_retried_with_backoff_and_delivered_exactly_once(redis_server):
    receiver = Receiver(500, 200)  # refuses the first POST, takes the rest
    try:
        s = Setup(redis_server.client(), receiver)
        preflight_failed(s)
        refused_at = s.now
        first = s.tick(1)
        assert list(first.delivery.failed.values()) == ["webhook answered HTTP 500"]
        assert "secret-token" not in json.dumps(first.delivery.failed)  # the URL is a secret
        assert len(receiver.refused) == 1 and receiver.bodies == []
        # the retry waits for its backoff (full jitter, at most 5 s before the first retry) ...
        waiting = incident_tick(s.client, s.sender, refused_at)
        assert waiting.delivery.waiting == 1 and len(receiver.refused) == 1
        # ... then goes, once
        s.now = refused_at + timedelta(seconds=5)
        s.tick()
        assert receiver.events() == [("firing", "preflight_failed", "preflight")]
        assert len(receiver.refused) == 1
    finally:
        receiver.close()


def test_a_resolution_waits_for_its_undelivered_firing_alert(redis_server):
    receiver = Receiver(500)
    s = Setup(redis_server.client(), receiver)
    try:
        clear = disk_low(s)
        s.tick(1)
        clear()
        s.tick(3)
        assert receiver.bodies == [] and len(receiver.refused) >= 1
        assert all(b["event"] == "firing" for b in receiver.refused)  # order kept: firing first
    finally:
        receiver.close()
    working = Receiver()
    try:
        s.sender = WebhookSender(working.url)
        s.now += timedelta(minutes=11)  # past the longest backoff
        s.tick()
        assert working.events() == [("firing", "disk_low", "c1"), ("resolved", "disk_low", "c1")]
    finally:
        working.close()


def test_several_processes_evaluating_together_alert_once(setup, redis_server):
    collector_down(setup)
    now = setup.now
    errors: list[BaseException] = []

    def evaluate():
        client = redis_server.client()  # a process of its own: its own connection
        try:
            for n in range(5):
                incident_tick(client, setup.sender, now + timedelta(seconds=n))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert setup.receiver.events() == [("firing", "collector_down", "c1")]


def test_no_secret_reaches_the_webhook(setup):
    app_key, app_secret = "PSk3yAppKeyValue01", "PSs3cretValue0002"
    setup.sender = WebhookSender(setup.receiver.url, secrets=(app_key, app_secret))
    breaker = CircuitBreaker("broker:kis", RedisStateStore(setup.client), clock=setup.epoch)
    breaker.trip_permanently(
        f"token call to https://user:hunter22@broker.example/oauth2/tokenP?appkey={app_key} refused; "
        f'headers {{"appsecret": "{app_secret}", "authorization": "Bearer eyJhbGciOiJ9.x.y"}} '
        "webhook https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    )
    incident_tick(setup.client, setup.sender, setup.now, secrets=(app_key, app_secret))
    assert [b["kind"] for b in setup.receiver.bodies] == ["breaker_permanent_open"]
    stored = json.dumps(setup.client.hgetall(key("incidents", "open")))  # the incident record too
    payload = json.dumps(setup.receiver.bodies) + stored
    for secret in (app_key, app_secret, "hunter22", "eyJhbGciOiJ9", "XXXXSECRET", "secret-token"):
        assert secret not in payload
    assert "https://***@broker.example/oauth2/tokenP?appkey=***" in setup.receiver.bodies[0]["message"]


def test_scrub_masks_credentials_in_their_usual_shapes():
    assert scrub("https://u:p@h/x and http://tok@h") == "https://***@h/x and http://***@h"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: *** ***"
    assert scrub("bearer abc.def") == "bearer ***"
    assert scrub('{"access_token": "t0k", "app_key": "k"}') == '{"access_token": "***", "app_key": "***"}'
    assert scrub("appsecret=s3&x=1 token:abc") == "appsecret=***&x=1 token:***"
    assert scrub("https://discord.com/api/webhooks/123/abc") == "https://discord.com/api/webhooks/***"
    assert scrub("the value PLAINSECRET leaked", ["PLAINSECRET"]) == "the value *** leaked"
    assert scrub("token valid for 23.9 h") == "token valid for 23.9 h"  # prose stays


def test_the_status_document_lists_open_incidents_and_undelivered_alerts(redis_server):
    receiver = Receiver(500)
    try:
        s = Setup(redis_server.client(), receiver)
        disk_low(s)
        s.tick(1)
        incidents = status_document(s.client, s.now, "kis")["incidents"]
        assert [(i["kind"], i["subject"]) for i in incidents["open"]] == [("disk_low", "c1")]
        assert incidents["open"][0]["since"] == T0.isoformat()
        assert incidents["alerts_undelivered"] == 1  # the webhook refused it: still queued
    finally:
        receiver.close()
