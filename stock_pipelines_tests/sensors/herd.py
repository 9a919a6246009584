"""A herd of real collectors SIGKILLed together and restarted later, under `dagster dev`: every
closed minute of the outage must be back in minute_bars within 5 minutes (project clock) of the
restart, from the heartbeat sensor's recovery runs, long before the close.

Shared by `test_self_healing_e2e.py` (3 collectors, a short outage) and `benchmarks/herd_restart.py`
(10 collectors, 2.5 minutes).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._daemon.daemon import SchedulerDaemon

from stock_pipelines.defs.jobs.recovery import COLLECTOR_TAG, WINDOW_TAG
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.recovery_window import Window
from stock_pipelines.sim.day import SimDay
from stock_pipelines_tests.dagster_dev import dagster_dev
from stock_pipelines_tests.no_scheduler import INSTANCE_YAML as NO_SCHEDULER
from stock_pipelines_tests.sensors.live_collectors import (
    DAY,
    CollectorProcess,
    differences,
    exchange_at_the_open,
    expected_bars,
    finished,
    minute_floor,
    project_env,
    project_now,
    runs_of,
    start_collectors,
    stop_sensor,
    stored_bars,
    ticks_since,
    wait_for,
)

SENSOR = "collector_heartbeat_sensor"
RECOVERY_DEADLINE = timedelta(minutes=5)  # the sensor's promise: partial_every (4 min) plus a run


@dataclass
class HerdResult:
    collectors: int
    symbols: int
    killed_at: datetime
    restarted_at: datetime
    recovered_at: datetime  # project clock: every closed minute of the outage matched the truth
    restart_to_recovered_wall_s: float
    minutes_checked: int
    bars_checked: int
    runs_before_restart: int
    runs_after_restart: int

    @property
    def restart_to_recovered_s(self) -> float:
        return (self.recovered_at - self.restarted_at).total_seconds()

    def summary(self) -> str:
        return (
            f"{self.collectors} collectors ({self.symbols} symbols) killed "
            f"{self.killed_at:%H:%M:%S}, restarted {self.restarted_at:%H:%M:%S}; every closed minute of the "
            f"outage ({self.minutes_checked} minutes, {self.bars_checked} bars) back in minute_bars "
            f"{self.restart_to_recovered_s:.0f} s (project clock) / {self.restart_to_recovered_wall_s:.0f} s "
            f"(wall) after the restart; recovery runs {self.runs_before_restart} before, "
            f"{self.runs_after_restart} after the restart"
        )


def _window(record) -> Window:
    return Window.from_json(json.loads(record.dagster_run.tags[WINDOW_TAG]))


def herd_restart(tmp_path: Path, redis_server, *, collectors: int = 10, per_collector: int = 4,
                 seed: int = 11, outage: timedelta | None = None) -> HerdResult:
    """Kill every collector at once; restart them after `outage` (project clock), or, when None,
    as soon as a whole minute lies between the first wave's windows and now (the minutes only
    the restart's runs can bring back); in both cases not before the first wave has run."""
    symbols = collectors * per_collector
    codes = SimDay(DAY, seed=seed, symbols=symbols).codes
    groups = {f"herd-{i + 1:02d}": codes[i * per_collector:(i + 1) * per_collector] for i in range(collectors)}
    client = redis_server.client()
    with exchange_at_the_open(seed, symbols) as (url, fake_now):
        env = project_env(tmp_path, url, redis_server.url, fake_now)
        running = [CollectorProcess(env, name, group, tmp_path) for name, group in groups.items()]
        try:
            with dagster_dev(tmp_path, env=env, instance_yaml=NO_SCHEDULER) as dev:
                for collector in running:
                    collector.wait_streaming(client)
                stop_sensor(dev, "tick_archive_sensor")  # observes the wall clock's date, not DAY
                instance = dg.DagsterInstance.from_config(str(dev.home))
                assert SchedulerDaemon.daemon_type() not in instance.get_required_daemon_types()
                since = time.time()
                wait_for("the heartbeat sensor's first evaluation", lambda: ticks_since(dev, SENSOR, since),
                         240, every=1)
                assert runs_of(instance, "recovery_job") == [], "recovery launched for healthy collectors"

                for collector in running:
                    collector.kill()
                killed_at = project_now(env)

                def first_wave():
                    records = runs_of(instance, "recovery_job")
                    covered = {r.dagster_run.tags[COLLECTOR_TAG] for r in records}
                    return records if covered == set(groups) else None

                wave = wait_for("a recovery run for every killed collector", first_wave, 180, every=1)
                if outage is not None:
                    restart_at = killed_at + outage
                else:
                    wave_end = max(_window(r).end for r in wave)
                    # one whole minute lost after the first wave's windows: only the restart's runs
                    # can bring it back (the bug this guards against left it to the end of the day)
                    restart_at = minute_floor(wave_end) + timedelta(minutes=1, seconds=2)
                # The first wave has run before the restart (as it does in a 2.5-minute outage): what
                # is still missing then can only come back through the runs the restart launches.
                for record in wave:
                    wait_for("the first wave to finish",
                             lambda r=record: finished(instance, r.dagster_run.run_id), 300, every=1)
                wait_for(f"the restart time {restart_at:%H:%M:%S}", lambda: project_now(env) >= restart_at,
                         max((restart_at - project_now(env)).total_seconds(), 0) + 30, every=0.2)
                restarted_wall, restarted_at = time.time(), project_now(env)
                before = {r.dagster_run.run_id for r in runs_of(instance, "recovery_job")}
                running += start_collectors(env, client, groups, tmp_path)

                # every minute from the kill's to the restart's, edges included, once it has closed
                first, last = minute_floor(killed_at), minute_floor(restarted_at)
                expected = expected_bars(seed, symbols, first, last)
                assert expected.height > 0
                deadline = restarted_at + RECOVERY_DEADLINE
                wait_for(f"the minute of the restart ({last:%H:%M}) to close",
                         lambda: project_now(env) >= last + timedelta(minutes=1), 90, every=0.5)
                diff: list[str] = []
                while True:
                    diff = differences(expected, stored_bars(Path(env["STOCK_PIPELINES_DATA_DIR"]), first, last))
                    now = project_now(env)
                    if not diff or now > deadline:
                        break
                    time.sleep(1)
                recovered_at, recovered_wall = now, time.time()
                assert not diff, (
                    f"{len(diff)} bars of the outage {first:%H:%M}-{last:%H:%M} not back in minute_bars "
                    f"5 minutes after the restart at {restarted_at:%H:%M:%S}: {diff[:10]}"
                )
                # the restart itself was noticed: the sensor launched the rest of every outage (spread
                # over half a minute, so some may come after the bars are back)
                def restart_runs():
                    after = [r for r in runs_of(instance, "recovery_job") if r.dagster_run.run_id not in before]
                    restarted = {r.dagster_run.tags[COLLECTOR_TAG] for r in after
                                 if "restart after downtime" in r.dagster_run.tags.get("stock_pipelines/reason", "")}
                    return after if restarted == set(groups) else None

                after = wait_for("a restart run for every collector", restart_runs, 120, every=1)
                assert runs_of(instance, "end_of_day_job") == [], "an end-of-day run, not the sensor, recovered"
                assert recovered_at < krx_calendar().session(DAY).close - timedelta(hours=6)
                for record in runs_of(instance, "recovery_job"):
                    run = wait_for("every recovery run to end",
                                   lambda r=record: finished(instance, r.dagster_run.run_id), 300, every=1)
                    assert run.status == dg.DagsterRunStatus.SUCCESS, run.tags["dagster/run_key"]
                return HerdResult(
                    collectors, symbols, killed_at.astimezone(SEOUL), restarted_at, recovered_at,
                    recovered_wall - restarted_wall, int((last - first).total_seconds() // 60) + 1,
                    expected.height, len(before), len(after),
                )
        finally:
            for collector in running:
                collector.close()
