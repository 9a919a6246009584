"""Done-when of issue 6, end to end: `dagster dev` (webserver + daemon), a real Redis, `sim exchange`
and a simulated collector process heartbeating through HeartbeatPublisher.

1. SIGKILL the collector: the sensor launches a recovery run, it succeeds; the collector comes
   back, the rest is recovered, and a whole minute lost in the outage equals the exchange's truth.
   Prints kill -> launch and kill -> success.
2. The exchange answers unauthorized: the breaker goes PERMANENT_OPEN, dormant mode is entered, no
   further runs launch; `stock-pipelines resume --reason ...` brings automatic recovery back.

Today may not be a trading day, so the whole setup shares one fake clock
(STOCK_PIPELINES_FAKE_NOW, running at real speed) pinned to a session day, as does the exchange.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta

import dagster as dg
import httpx
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value, parse_fake_now
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.dagster_dev import dagster_dev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 11, 8
START = datetime(2026, 11, 20, 10, 30, 0, tzinfo=SEOUL)


class Collector:
    def __init__(self, env: dict, archive, history: bool) -> None:
        command = [
            sys.executable,
            "-m",
            "stock_pipelines_tests.sensors.sim_collector",
            "--archive",
            str(archive),
            "--date",
            DAY.isoformat(),
            "--seed",
            str(SEED),
            "--symbols",
            str(SYMBOLS),
            "--interval",
            "3",
        ]
        self.process = subprocess.Popen(
            command + (["--history"] if history else []), env=env, stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        assert line.startswith("ready"), f"collector did not start: {line!r} (exit {self.process.poll()})"

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def recovery_runs(instance: dg.DagsterInstance):
    return instance.get_run_records(
        dg.RunsFilter(job_name="recovery_job"), order_by="create_timestamp", ascending=True
    )


SENSOR_TICKS = """
query ($name: String!) {
  sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName: "stock_pipelines",
                                 sensorName: $name}) {
    ... on Sensor { sensorState { ticks(limit: 8) { status timestamp skipReason error { message } } } }
  }
}
"""


def sensor_ticked_since(dev, name: str, since: float) -> bool:
    """Has the daemon evaluated `name` (any outcome) after `since` (epoch seconds)?"""
    data = dev.graphql(SENSOR_TICKS, {"name": name})
    ticks = (data["sensorOrError"].get("sensorState") or {}).get("ticks") or []
    return any(t["timestamp"] >= since and t["status"] != "STARTED" for t in ticks)


def wait_for(what: str, predicate, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return (
        run
        if run.status
        in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        else None
    )


def new_run(instance, seen: set[str]):
    fresh = [r for r in recovery_runs(instance) if r.dagster_run.run_id not in seen]
    return fresh[0] if fresh else None


def test_a_killed_collector_is_recovered_by_the_daemon_and_unauthorized_goes_dormant_until_resume(
    tmp_path, redis_server
):
    archive, data = tmp_path / "archive", tmp_path / "data"
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "STOCK_PIPELINES_DATA_DIR": str(data),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(archive),
        "KIS_APP_KEY": "e2e-key",
        "KIS_APP_SECRET": "e2e-secret",
        "STOCK_PIPELINES_BROKER": "kis",
    }
    env.pop(ENV_FAKE_NOW, None)
    with run_exchange_process(
        [
            "--date",
            DAY.isoformat(),
            "--seed",
            str(SEED),
            "--symbols",
            str(SYMBOLS),
            "--pin",
            "--start",
            "10:30",
        ]
    ) as url:
        httpx.post(
            f"{url}/admin/clock", json={"at": START.isoformat(), "pinned": False, "speed": 1}
        ).raise_for_status()
        env.update(KIS_BASE_URL=str(url), **{ENV_FAKE_NOW: fake_now_value(START, time.time())})
        fake_now = lambda: parse_fake_now(env[ENV_FAKE_NOW], time.time())
        collector = Collector(env, archive, history=True)
        try:
            with dagster_dev(tmp_path, env=env) as dev:
                instance = dg.DagsterInstance.from_config(str(dev.home))
                # the daemon is up and the heartbeat sensor has seen the collector healthy (a fixed
                # sleep here was flaky on a loaded machine, where the code server loads slowly)
                since = time.time()
                wait_for("the heartbeat sensor's first evaluation",
                         lambda: sensor_ticked_since(dev, "collector_heartbeat_sensor", since), 180, every=1)
                assert recovery_runs(instance) == []

                # -- 1. SIGKILL -> launch -> success -----------------------------------------------
                collector.kill()
                killed_wall, killed_fake = time.time(), fake_now()
                try:
                    first = wait_for("a sensor-launched recovery run", lambda: new_run(instance, set()), 60)
                except AssertionError:
                    ticks = dev.graphql(SENSOR_TICKS, {"name": "collector_heartbeat_sensor"})
                    print("sensor ticks:", json.dumps(ticks)[:3000])
                    print("dagster dev log:", dev.log.read_text()[-3000:])
                    raise
                launched_s = first.create_timestamp.timestamp() - killed_wall
                run = wait_for(
                    "the recovery run to finish", lambda: finished(instance, first.dagster_run.run_id), 180
                )
                assert run.status == dg.DagsterRunStatus.SUCCESS, dev.log.read_text()[-3000:]
                succeeded_s = instance.get_run_record_by_id(run.run_id).end_time - killed_wall
                print(f"\nkill -> launch {launched_s:.1f} s, kill -> success {succeeded_s:.1f} s")
                assert launched_s < 60
                assert run.tags["stock_pipelines/run_kind"] == "recovery"
                assert run.tags["dagster/partition"] == DAY.isoformat()
                assert run.tags["dagster/run_key"].startswith("recovery:sim-kis-1:20261120:")
                seen = {run.run_id}

                # the collector comes back once a whole minute lay inside the outage
                lost_minute = killed_fake.replace(second=0, microsecond=0) + timedelta(minutes=1)
                wait_for(
                    "the lost minute to close", lambda: fake_now() >= lost_minute + timedelta(seconds=63), 90
                )
                collector = Collector(env, archive, history=False)
                rest = wait_for("the run for the rest", lambda: new_run(instance, seen), 60)
                run = wait_for("the rest to finish", lambda: finished(instance, rest.dagster_run.run_id), 180)
                assert run.status == dg.DagsterRunStatus.SUCCESS
                seen.add(run.run_id)
                assert_minute_recovered(data, lost_minute)

                # -- 2. unauthorized -> PERMANENT_OPEN -> dormant -> resume ------------------------
                httpx.post(f"{url}/admin/faults", json={"mode": "unauthorized"}).raise_for_status()
                # The run the sensor launches for this outage asks the broker only for closed minutes
                # it has not fetched before (recovery.reuse): killing late in a minute makes that
                # minute closed by the time the sensor (9-20 s later) sees the outage, so the run
                # must call the refusing broker.
                wait_for("a kill late in the minute", lambda: 52 <= fake_now().second < 56, 65, every=0.2)
                collector.kill()
                failing = wait_for(
                    "a recovery run against the refusing broker", lambda: new_run(instance, seen), 60
                )
                run = wait_for("it to end", lambda: finished(instance, failing.dagster_run.run_id), 180)
                seen.add(run.run_id)  # it stops at the refusal: a failed recovery, whatever the run status
                status = wait_for("dormant mode", lambda: _dormant_status(env), 60)
                assert status["breakers"]["kis"]["state"] == "PERMANENT_OPEN"
                assert "PERMANENT_OPEN" in status["dormant"]["reason"]
                time.sleep(25)  # two or more sensor evaluations with the collector still down
                assert new_run(instance, seen) is None, "a run was launched while dormant"

                httpx.post(f"{url}/admin/faults", json={"mode": "none"}).raise_for_status()
                resumed = subprocess.run(
                    check=False,
                    args=[
                        sys.executable,
                        "-m",
                        "stock_pipelines.cli",
                        "resume",
                        "--reason",
                        "key rotated (e2e)",
                        "--by",
                        "e2e-test",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert resumed.returncode == 0, resumed.stderr
                assert json.loads(resumed.stdout)["breakers_reset"] == {"kis": "CLOSED"}
                collector = Collector(env, archive, history=False)

                # the refused window is retried (attempt 2) and the restart's window recovered
                def after_resume():
                    fresh = [r for r in recovery_runs(instance) if r.dagster_run.run_id not in seen]
                    keys = [r.dagster_run.tags["dagster/run_key"] for r in fresh]
                    has_retry = any(k.endswith(":a2") for k in keys)
                    return fresh if has_retry and any(k.endswith(":a1") for k in keys) else None

                fresh = wait_for("the retry and the restart's run after resume", after_resume, 90)
                for record in fresh:
                    run = wait_for(
                        "it to finish", lambda r=record: finished(instance, r.dagster_run.run_id), 180
                    )
                    assert run.status == dg.DagsterRunStatus.SUCCESS, run.tags["dagster/run_key"]
                wait_for(
                    "status to show the success",
                    lambda: _status(env)["last_recovery_runs"][0]["succeeded"],
                    30,
                )
        finally:
            if collector.process.poll() is None:
                collector.kill()


def _status(env: dict) -> dict:
    result = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def _dormant_status(env: dict):
    result = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "stock_pipelines.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(result.stdout)
    return document if document["dormant"]["dormant"] else None


def assert_minute_recovered(data_dir, minute: datetime) -> None:
    final = lake.read_partition("minute_bars", DAY, data_dir)
    sim = SimDay(DAY, seed=SEED, symbols=SYMBOLS)
    minute_us = int(minute.timestamp()) * 1_000_000
    expected = []
    for code in sim.codes:
        truth = sim.minute_bars(code)
        for i, start in enumerate(truth.start):
            if int(start) == minute_us:
                expected.append(
                    (
                        code,
                        int(truth.open[i]),
                        int(truth.high[i]),
                        int(truth.low[i]),
                        int(truth.close[i]),
                        int(truth.volume[i]),
                    )
                )
    got = (
        final.filter(pl.col("minute").dt.epoch("us") == minute_us)
        .select("symbol", "open", "high", "low", "close", "volume")
        .sort("symbol")
        .rows()
    )
    assert expected, "the lost minute had no trades to recover"
    assert got == sorted(expected), f"minute {minute:%H:%M} after recovery differs from the exchange's truth"
