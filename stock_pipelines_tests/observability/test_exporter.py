"""`stock-pipelines metrics serve` as a real process on a real Redis and Dagster instance: the
breakers, dormant mode, kill switches, recovery runs by outcome and the newest day's verdict as
series; the certification deadline from the calendar; /health 503 naming Redis when it is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import date, datetime

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.metrics_export import SERIES, OperationsMetrics
from stock_pipelines.quality.store import write_report
from stock_pipelines.resilience.flags import AUTO_RECOVERY, FeatureFlags
from stock_pipelines_tests.dagster_dev import free_port
from stock_pipelines_tests.waiting import wait_until

from .scrape import Scrape, health, scrape

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CSAT_DAY = date(2026, 11, 19)  # closes 16:30: certified by 17:30
REGULAR_DAY = date(2026, 11, 20)


def exporter_env(tmp_path, redis_url: str, fake_now: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STOCK_PIPELINES_", "REDIS_URL", "DAGSTER_"))}
    env.update(REDIS_URL=redis_url, STOCK_PIPELINES_DATA_DIR=str(tmp_path / "lake"),
               STOCK_PIPELINES_FAKE_NOW=fake_now, DAGSTER_HOME=str(tmp_path / "dagster_home"))
    env.update(extra)
    return env


def start_exporter(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "stock_pipelines.cli", "metrics", "serve", "--port",
                                str(port), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    assert line, f"no start line (exit {process.poll()}): {process.stderr.read()[-2000:]}"
    assert json.loads(line)["metrics"] == f"http://127.0.0.1:{port}/metrics"
    return process, port


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


def add_runs(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus, count: int) -> None:
    for _ in range(count):
        instance.add_run(DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=status))


def test_exporter_process_serves_the_automation_state(tmp_path, redis_server, monkeypatch):
    now = f"{CSAT_DAY}T17:45:00+09:00"  # past the CSAT day's deadline, no report written that day
    monkeypatch.setenv(ENV_FAKE_NOW, now)  # this process's governance writes on the exporter's clock
    client = redis_server.client()
    governance = RecoveryGovernance(client, "kis")
    governance.breaker("kis").trip_permanently("token refused three times")
    governance.guard.enter("breaker broker:kis PERMANENT_OPEN")
    FeatureFlags(client, environ={}).set(AUTO_RECOVERY, False)
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    with dg.DagsterInstance.get() as instance:
        add_runs(instance, "recovery_job", dg.DagsterRunStatus.FAILURE, 2)
        add_runs(instance, "recovery_job", dg.DagsterRunStatus.SUCCESS, 1)
        add_runs(instance, "end_of_day_job", dg.DagsterRunStatus.SUCCESS, 1)  # not a recovery run
    previous = date(2026, 11, 18)
    write_report(previous, {"date": previous.isoformat(), "certified": False, "completeness": 0.9975},
                 "<html></html>", tmp_path / "lake")

    process, port = start_exporter(exporter_env(tmp_path, redis_server.url, now))
    try:
        metrics = scrape(port)
        assert set(SERIES) <= metrics.families(), set(SERIES) - metrics.families()
        assert metrics.value("stock_pipelines_redis_up") == 1
        assert metrics.value("stock_pipelines_breaker_state", broker="kis", state="PERMANENT_OPEN") == 1
        assert metrics.value("stock_pipelines_breaker_state", broker="kis", state="CLOSED") == 0
        assert metrics.value("stock_pipelines_breaker_state", broker="kiwoom", state="CLOSED") == 1
        assert metrics.value("stock_pipelines_dormant") == 1
        assert metrics.value("stock_pipelines_kill_switch_enabled", flag=AUTO_RECOVERY) == 0
        assert metrics.value("stock_pipelines_kill_switch_enabled", flag="FEATURE_PREFLIGHT_ENABLED") == 1
        assert metrics.value("stock_pipelines_recovery_runs", status="FAILURE") == 2
        assert metrics.value("stock_pipelines_recovery_runs", status="SUCCESS") == 1
        assert metrics.value("stock_pipelines_trading_day") == 1
        deadline = datetime(2026, 11, 19, 17, 30, tzinfo=SEOUL).timestamp()
        assert metrics.value("stock_pipelines_day_certification_deadline_seconds") == deadline
        assert metrics.value("stock_pipelines_day_certified") == 0
        assert metrics.value("stock_pipelines_last_day_completeness_ratio") == 0.9975
        assert metrics.value("stock_pipelines_last_day_certified") == 0
        assert metrics.value("stock_pipelines_last_day_timestamp_seconds") == datetime(
            2026, 11, 18, tzinfo=SEOUL).timestamp()
        assert health(port) == (200, "ok\n")

        redis_server.kill()
        status, body = health(port)
        assert status == 503 and body.startswith("redis unreachable: ConnectionError"), body
        down = scrape(port)
        assert down.value("stock_pipelines_redis_up") == 0
        assert down.value("stock_pipelines_breaker_state", broker="kis", state="PERMANENT_OPEN") is None
        assert down.value("stock_pipelines_last_day_completeness_ratio") == 0.9975  # the lake still reads

        redis_server.start()  # back, and empty: everything reads as its default again
        assert wait_until(lambda: health(port)[0] == 200, 10, "/health 200 once Redis is back")
        assert scrape(port).value("stock_pipelines_dormant") == 0

        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        stop(process)


def test_exporter_refuses_to_start_without_an_instance(tmp_path, redis_server):
    env = exporter_env(tmp_path, redis_server.url, f"{REGULAR_DAY}T12:00:00+09:00")
    del env["DAGSTER_HOME"]
    done = subprocess.run([sys.executable, "-m", "stock_pipelines.cli", "metrics", "serve", "--port", "0"],
                          check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert "DAGSTER_HOME is not set" in done.stderr and "--no-instance" in done.stderr


@pytest.mark.parametrize("day, deadline", [(REGULAR_DAY, "16:30"), (CSAT_DAY, "17:30")])
def test_certification_deadline_is_the_close_plus_an_hour(tmp_path, redis_server, day, deadline):
    at = datetime.fromisoformat(f"{day}T15:00:00+09:00")
    exporter = OperationsMetrics(redis_server.client(), lambda: at, data_dir=tmp_path)
    metrics = Scrape.of(exporter)
    expected = datetime.fromisoformat(f"{day}T{deadline}:00+09:00").timestamp()
    assert metrics.value("stock_pipelines_day_certification_deadline_seconds") == expected
    assert metrics.value("stock_pipelines_day_certified") == 0
    assert metrics.value("stock_pipelines_last_day_certified") is None  # no report anywhere

    write_report(day, {"date": day.isoformat(), "certified": True, "completeness": 1.0}, "", tmp_path)
    metrics = Scrape.of(exporter)
    assert metrics.value("stock_pipelines_day_certified") == 1
    assert metrics.value("stock_pipelines_last_day_certified") == 1


def test_no_deadline_on_a_day_without_trading(tmp_path, redis_server):
    saturday = datetime(2026, 11, 21, 18, 0, tzinfo=SEOUL)
    metrics = Scrape.of(OperationsMetrics(redis_server.client(), lambda: saturday, data_dir=tmp_path))
    assert metrics.value("stock_pipelines_trading_day") == 0
    assert metrics.value("stock_pipelines_day_certification_deadline_seconds") is None
    assert metrics.value("stock_pipelines_day_certified") is None


def test_a_day_past_the_calendar_leaves_the_day_series_out(tmp_path, redis_server):
    past_the_calendar = datetime(2029, 6, 1, 18, 0, tzinfo=SEOUL)
    exporter = OperationsMetrics(redis_server.client(), lambda: past_the_calendar, data_dir=tmp_path)
    metrics = Scrape.of(exporter)
    assert metrics.value("stock_pipelines_redis_up") == 1
    assert metrics.value("stock_pipelines_dormant") == 0
    assert metrics.value("stock_pipelines_trading_day") is None
    assert metrics.value("stock_pipelines_last_day_certified") is None
