"""Incidents counted from the receiver's posts and from a live Redis, and faults timed by the
incident or the sensor-launched run that noticed them."""

from __future__ import annotations

from datetime import datetime

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.incident_store import IncidentStore
from stock_pipelines.soak.figures_alerts import open_in_redis, pair
from stock_pipelines.soak.figures_dagster import RunRow
from stock_pipelines.soak.figures_faults import time_faults

DAY = "2026-11-19"


def post(event: str, received: float, incident_id: str, subject: str = "kis-1", opened: str = DAY) -> dict:
    return {"received_wall": received, "body": {
        "event": event, "kind": "collector_down", "subject": subject, "incident_id": incident_id,
        "opened_at": f"{opened}T10:00:00+09:00",
    }}


def test_an_incident_open_in_redis_without_its_resolution_is_named(redis_server):
    store = IncidentStore(redis_server.client())
    at = datetime(2026, 11, 19, 10, 0, tzinfo=SEOUL)
    assert store.open("collector_stalled", "kiwoom-1", "no trades for 90 s", at)
    [incident] = store.open_incidents().values()
    posts = [
        post("firing", 10.0, "collector_down:kis-1:1"), post("resolved", 50.0, "collector_down:kis-1:1"),
        {"received_wall": 60.0, "body": {"text": "hello"}},  # not an incident alert
    ]
    figures = pair(posts, open_in_redis(redis_server.url))
    assert (len(figures.incidents), figures.alerts, figures.resolutions) == (2, 1, 1)
    assert figures.problems == [
        f"incident collector_stalled kiwoom-1 ({incident.id}): 0 firing alerts, not 1",
        "1 webhook posts are not incident alerts",
    ]
    redis_server.stop()
    assert open_in_redis(redis_server.url) is None  # Redis gone: alerts.jsonl is the only record


def test_faults_are_timed_by_the_first_incident_or_sensor_run_that_noticed_them():
    alerts = pair([
        post("firing", 112.0, "a"), post("resolved", 180.0, "a"),
        post("firing", 95.0, "early", subject="kiwoom-1"),  # before its fault: not the fault's
        post("firing", 130.0, "other-day", subject="kiwoom-1", opened="2026-11-20"),
    ])
    runs = [
        RunRow("r1", "recovery_job", "FAILURE", DAY, "sensor collector_heartbeat_sensor", 120.0, 125.0),
        RunRow("r2", "recovery_job", "SUCCESS", DAY, "sensor recovery_failure_sensor", 140.0, 170.0),
        RunRow("r3", "end_of_day_job", "SUCCESS", DAY, "schedule end_of_day_schedule", 101.0, 400.0),
    ]
    faults = [
        {"id": i, "kind": kind, "subject": subject, "day": day, "injected_wall": 100.0}
        for i, kind, subject, day in [
            ("kill", "collector_sigkill", "kis-1", DAY),
            ("stop", "collector_sigstop", "kiwoom-1", DAY),
            ("redis", "redis_kill", "redis", "2026-11-20"),
        ]
    ]
    kill, stop, redis = time_faults(faults, alerts, runs)
    assert (kill.detect_s, kill.recover_s, kill.detected_by) == (12.0, 80.0, "incident collector_down kis-1")
    # no incident of its own that day: the heartbeat sensor's run noticed; the retry's success healed it
    assert (stop.detect_s, stop.recover_s) == (20.0, 70.0)
    assert stop.detected_by == "run recovery_job by sensor collector_heartbeat_sensor"
    assert (redis.detect_s, redis.recover_s, redis.detected_by) == (None, None, "not detected")
