"""Self-healing end to end: `dagster dev` (webserver + daemon), a real Redis, `sim exchange` and
real `stock-pipelines collector run` processes streaming its WebSocket and heartbeating.

1. SIGKILL the collector: the sensor launches a recovery run, it succeeds; the collector is
   restarted, the rest is recovered, and every minute of the outage (its edge minutes included)
   equals the bars aggregated from the exchange's trade list. Prints kill -> launch and
   kill -> success.
2. The exchange answers unauthorized: the breaker goes PERMANENT_OPEN, dormant mode is entered, the
   sensor keeps evaluating and launches nothing; `stock-pipelines resume --reason ...` brings
   automatic recovery back.
3. A herd of collectors SIGKILLed together, restarted once the first wave of recovery has run
   and a whole minute lies after it: every closed minute of the outage is back in minute_bars
   within 5 minutes (project clock) of the restart, from the runs the restart launches
   (`herd.py`; three collectors here, ten with a 2.5-minute outage in
   `benchmarks/herd_restart.py`).

Today may not be a trading day, so everything shares one fake clock, running at real speed from
DAY's open: the exchange's (the collectors use it) and STOCK_PIPELINES_FAKE_NOW (the daemon, run
workers, the CLI). The test instance runs no scheduler (`no_scheduler.py`): the pre-flight,
end-of-day and retention schedules tick on the wall clock and would launch runs for the real date;
tick_archive_sensor, which observes the wall clock's date, is stopped.

Both tests share one live day (`live_collectors.live_day`: the exchange, Redis and `dagster dev`
started once for the module; a `dagster dev` start costs a minute or more on a loaded machine).
Each streams its own symbols under its own collector ids and counts only its own collectors'
runs; its collectors are left running when it ends, so no outage of one test launches runs in
the next.
"""

import json
import subprocess
import sys
import time
from datetime import timedelta

import dagster as dg
from dagster._daemon.daemon import SchedulerDaemon
import httpx
import pytest

from stock_pipelines_tests.sensors.herd import herd_restart_on
from stock_pipelines_tests.sensors.live_collectors import (
    DAY,
    HEARTBEAT_SENSOR as SENSOR,
    differences,
    expected_bars,
    finished,
    live_day,
    minute_floor,
    project_now,
    runs_of,
    sensor_ticks,
    start_collectors,
    stored_bars,
    ticks_since,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# One live day (exchange, Redis, `dagster dev`) for both tests, each on its own symbols: the herd
# streams the first HERD_COLLECTORS * HERD_PER_COLLECTOR codes, the single collector the next SYMBOLS.
SEED, SYMBOLS = 11, 8
HERD_COLLECTORS, HERD_PER_COLLECTOR = 3, 4
HERD_SYMBOLS = HERD_COLLECTORS * HERD_PER_COLLECTOR
COLLECTOR = "kis-e2e-1"


@pytest.fixture(scope="module")
def day(tmp_path_factory, module_redis_server):
    with live_day(tmp_path_factory.mktemp("live_day"), module_redis_server, SEED, HERD_SYMBOLS + SYMBOLS) as live:
        yield live


def new_run(instance, seen: set[str]):
    fresh = [r for r in runs_of(instance, "recovery_job", {COLLECTOR}) if r.dagster_run.run_id not in seen]
    return fresh[0] if fresh else None


def test_a_killed_collector_is_recovered_by_the_daemon_and_unauthorized_goes_dormant_until_resume(day):
    env, url, client, dev, instance = day.env, day.url, day.redis_client, day.dev, day.instance
    codes = day.codes()[HERD_SYMBOLS:HERD_SYMBOLS + SYMBOLS]
    [collector] = start_collectors(env, client, {COLLECTOR: codes}, day.log_dir)
    day.keep([collector])
    assert SchedulerDaemon.daemon_type() not in instance.get_required_daemon_types()
    # the heartbeat sensor has seen the collector healthy
    since = time.time()
    wait_for("a sensor evaluation with the collector streaming", lambda: ticks_since(dev, SENSOR, since), 60, every=1)
    assert runs_of(instance, "recovery_job", {COLLECTOR}) == []

    # -- 1. SIGKILL -> launch -> success -----------------------------------------------
    collector.kill()
    killed_wall, killed_at = time.time(), project_now(env)
    try:
        first = wait_for("a sensor-launched recovery run", lambda: new_run(instance, set()), 60)
    except AssertionError:
        print("sensor ticks:", json.dumps(sensor_ticks(dev, SENSOR))[:3000])
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
    assert run.tags["dagster/run_key"].startswith(f"recovery:{COLLECTOR}:20261120:")
    seen = {run.run_id}

    # restarted once a whole minute lay inside the outage after the first run's window
    lost_minute = minute_floor(killed_at) + timedelta(minutes=1)
    wait_for("the lost minute to close",
             lambda: project_now(env) >= lost_minute + timedelta(seconds=63), 150)
    restarted_at = project_now(env)
    collector.close()
    [collector] = start_collectors(env, client, {COLLECTOR: codes}, day.log_dir)
    day.keep([collector])
    # launched once the minute of the restart has closed (its broker bar is final then)
    rest = wait_for("the run for the rest", lambda: new_run(instance, seen), 120)
    assert "restart after downtime" in rest.dagster_run.tags["stock_pipelines/reason"]
    run = wait_for("the rest to finish", lambda: finished(instance, rest.dagster_run.run_id), 180)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    seen.add(run.run_id)
    # every minute of the outage, from the kill's to the restart's (both half archived)
    first_minute, last_minute = minute_floor(killed_at), minute_floor(restarted_at)
    expected = expected_bars(SEED, day.symbols, first_minute, last_minute, codes)
    assert expected.height >= 2 * len(codes), "the outage's minutes had no trades to recover"
    assert differences(expected, stored_bars(day.data_dir, first_minute, last_minute)) == []

    # -- 2. unauthorized -> PERMANENT_OPEN -> dormant -> resume ------------------------
    httpx.post(f"{url}/admin/faults", json={"mode": "unauthorized"}).raise_for_status()
    # The run the sensor launches for this outage asks the broker only for closed minutes
    # it has not fetched before (recovery.reuse): killing late in a minute makes that
    # minute closed by the time the sensor (9-20 s later) sees the outage, so the run
    # must call the refusing broker.
    wait_for("a kill late in the minute", lambda: 52 <= project_now(env).second < 56, 65, every=0.2)
    collector.kill()
    failing = wait_for(
        "a recovery run against the refusing broker", lambda: new_run(instance, seen), 60
    )
    run = wait_for("it to end", lambda: finished(instance, failing.dagster_run.run_id), 180)
    seen.add(run.run_id)  # it stops at the refusal: a failed recovery, whatever the run status
    status = wait_for("dormant mode", lambda: _dormant_status(env), 60)
    dormant_seen = time.time()
    assert status["breakers"]["kis"]["state"] == "PERMANENT_OPEN"
    assert "PERMANENT_OPEN" in status["dormant"]["reason"]
    # the sensor goes on evaluating the outage (a positive signal) and launches nothing
    held = wait_for("two sensor evaluations while dormant",
                    lambda: (t := ticks_since(dev, SENSOR, dormant_seen)) and len(t) >= 2 and t, 90)
    assert all(t["status"] == "SKIPPED" for t in held), held
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
    collector.close()
    [collector] = start_collectors(env, client, {COLLECTOR: codes}, day.log_dir)
    day.keep([collector])

    # the refused window is retried (attempt 2) and the restart's window recovered
    def after_resume():
        fresh = [r for r in runs_of(instance, "recovery_job", {COLLECTOR}) if r.dagster_run.run_id not in seen]
        keys = [r.dagster_run.tags["dagster/run_key"] for r in fresh]
        has_retry = any(k.endswith(":a2") for k in keys)
        return fresh if has_retry and any(k.endswith(":a1") for k in keys) else None

    fresh = wait_for("the retry and the restart's run after resume", after_resume, 150)
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
    assert runs_of(instance, "end_of_day_job") == [] and runs_of(instance, "preflight_job") == []


def test_a_herd_of_collectors_killed_and_restarted_is_recovered_within_five_minutes_of_the_restart(day):
    # three collectors keep the suite short; ten with a 2.5-minute outage: benchmarks/herd_restart.py
    result = herd_restart_on(day, collectors=HERD_COLLECTORS, per_collector=HERD_PER_COLLECTOR)
    print("\n" + result.summary())


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
    document = _status(env)
    return document if document["dormant"]["dormant"] else None
