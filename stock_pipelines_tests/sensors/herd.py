"""A herd of real collectors SIGKILLed together and restarted later, under `dagster dev`: every
closed minute of the outage must be back in minute_bars within 5 minutes (project clock) of the
restart, from the heartbeat sensor's recovery runs, long before the close.

Shared by `test_self_healing_e2e.py` (3 collectors, a short outage, on the module's live day) and
`benchmarks/herd_restart.py` (10 collectors, 2.5 minutes, a live day of its own).
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
from stock_pipelines_tests.sensors.live_collectors import (
    DAY,
    HEARTBEAT_SENSOR,
    LiveDay,
    differences,
    expected_bars,
    finished,
    live_day,
    minute_floor,
    project_now,
    runs_of,
    start_collectors,
    stored_bars,
    ticks_since,
    wait_for,
)

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
    """`herd_restart_on` a live day of its own."""
    with live_day(tmp_path, redis_server, seed, collectors * per_collector) as day:
        return herd_restart_on(day, collectors=collectors, per_collector=per_collector, outage=outage)


def herd_restart_on(day: LiveDay, *, collectors: int, per_collector: int, first_code: int = 0,
                    outage: timedelta | None = None) -> HerdResult:
    """Kill every collector at once; restart them after `outage` (project clock), or, when None,
    as soon as a whole minute lies between the first wave's windows and now (the minutes only
    the restart's runs can bring back); in both cases not before the first wave has run. The herd
    streams the day's codes from `first_code` on; runs for other collectors are not its own."""
    symbols = collectors * per_collector
    codes = day.codes()[first_code:first_code + symbols]
    assert len(codes) == symbols, f"the exchange serves {day.symbols} symbols"
    groups = {f"herd-{i + 1:02d}": codes[i * per_collector:(i + 1) * per_collector] for i in range(collectors)}
    herd = set(groups)
    env, client, instance, seed = day.env, day.redis_client, day.instance, day.seed
    running = start_collectors(env, client, groups, day.log_dir)
    day.keep(running)  # killed with the day, whatever happens here
    assert SchedulerDaemon.daemon_type() not in instance.get_required_daemon_types()
    streaming = time.time()
    wait_for("a sensor evaluation with the herd streaming",
             lambda: ticks_since(day.dev, HEARTBEAT_SENSOR, streaming), 60, every=1)
    assert runs_of(instance, "recovery_job", herd) == [], "recovery launched for healthy collectors"

    for collector in running:
        collector.kill()
    killed_at = project_now(env)

    def first_wave():
        records = runs_of(instance, "recovery_job", herd)
        covered = {r.dagster_run.tags[COLLECTOR_TAG] for r in records}
        return records if covered == herd else None

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
    before = {r.dagster_run.run_id for r in runs_of(instance, "recovery_job", herd)}
    day.keep(start_collectors(env, client, groups, day.log_dir))

    # every minute from the kill's to the restart's, edges included, once it has closed
    first, last = minute_floor(killed_at), minute_floor(restarted_at)
    expected = expected_bars(seed, day.symbols, first, last, codes)
    assert expected.height > 0
    deadline = restarted_at + RECOVERY_DEADLINE
    wait_for(f"the minute of the restart ({last:%H:%M}) to close",
             lambda: project_now(env) >= last + timedelta(minutes=1), 90, every=0.5)
    diff: list[str] = []
    while True:
        diff = differences(expected, stored_bars(day.data_dir, first, last))
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
        after = [r for r in runs_of(instance, "recovery_job", herd) if r.dagster_run.run_id not in before]
        restarted = {r.dagster_run.tags[COLLECTOR_TAG] for r in after
                     if "restart after downtime" in r.dagster_run.tags.get("stock_pipelines/reason", "")}
        return after if restarted == herd else None

    after = wait_for("a restart run for every collector", restart_runs, 120, every=1)
    assert runs_of(instance, "end_of_day_job") == [], "an end-of-day run, not the sensor, recovered"
    assert recovered_at < krx_calendar().session(DAY).close - timedelta(hours=6)
    for record in runs_of(instance, "recovery_job", herd):
        run = wait_for("every recovery run to end",
                       lambda r=record: finished(instance, r.dagster_run.run_id), 300, every=1)
        assert run.status == dg.DagsterRunStatus.SUCCESS, run.tags["dagster/run_key"]
    return HerdResult(
        collectors, symbols, killed_at.astimezone(SEOUL), restarted_at, recovered_at,
        recovered_wall - restarted_wall, int((last - first).total_seconds() // 60) + 1,
        expected.height, len(before), len(after),
    )
