"""The demo's second stage: watch the Dagster daemon's sensor recover the day by itself, then run
the end of day as the schedule would, and take the figures the summary reports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from stock_pipelines.commands.demo_stage import REPO_ROOT, SENSOR, DemoDay
from stock_pipelines.commands.scoped_environment import ScopedEnvironment


@dataclass(frozen=True)
class Watched:
    """What the watch saw: the sensor's recovery runs and, when they all succeeded, the bars
    before and after recovery and the end-of-day run's checks and verdict."""

    runs: list
    daemon_started: float  # wall clock
    stats: dict  # the exchange's counters (GET /admin/stats)
    recovered_ok: bool
    before: int = 0  # bars from the archive alone (tick_minute_bars)
    after: int = 0  # bars once recovered (minute_bars)
    by_source: dict = field(default_factory=dict)
    end_of_day: dict = field(default_factory=dict)


def watch(
    demo: DemoDay, url: str, instance, publisher, environment: ScopedEnvironment, timeout: float
) -> Watched:
    """Run the daemon until the sensor's recovery is over (the publisher beats meanwhile); if it
    succeeded, move both clocks to 10 minutes after the close and run the end of day."""
    import dagster as dg
    import httpx

    from stock_pipelines import lake
    from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value

    daemon_started = time.time()
    try:
        runs = watch_daemon(instance, demo.day, timeout, environment.for_children())
    finally:
        publisher.stop("demo over")
    stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
    recovered_ok = bool(runs) and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    if not recovered_ok:
        return Watched(runs, daemon_started, stats, recovered_ok)
    # what the sensor's recovery achieved, before the end-of-day run rebuilds the day
    before = lake.read_partition("tick_minute_bars", demo.day).height
    final = lake.read_partition("minute_bars", demo.day)
    by_source = dict(final.group_by("source").len().sort("source").iter_rows())
    # the schedule runs the end of day 10 minutes after the close: both clocks go there
    after_close = demo.session.close + timedelta(minutes=10)
    httpx.post(
        f"{url}/admin/clock", json={"at": after_close.isoformat(), "pinned": True}, timeout=10
    ).raise_for_status()
    environment.set(**{ENV_FAKE_NOW: fake_now_value(after_close)})
    end_of_day = run_end_of_day(instance, demo.day)
    return Watched(runs, daemon_started, stats, recovered_ok, before, final.height, by_source, end_of_day)


def run_end_of_day(instance, day: date) -> dict:
    """Run end_of_day_job for the day, as the schedule would after the close: every check on the
    day's assets, then its quality report (so `./run ui` shows both for the partition)."""
    from stock_pipelines.definitions import defs

    print(
        f"end_of_day_job for {day} (clock at 10 minutes after the close): the day's assets again, every asset "
        "check, then quality_report"
    )
    result = defs.resolve_job_def("end_of_day_job").execute_in_process(
        instance=instance,
        partition_key=day.isoformat(),
        raise_on_error=False,
        tags={"stock_pipelines/demo": "true"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        failed_steps = [event.step_key for event in result.all_events if event.is_step_failure]
        print(
            f"end_of_day_job failed (run {result.run_id}): steps {', '.join(failed_steps)}; see `stock-pipelines ui`"
        )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    report = result.asset_materializations_for_node("quality_report")
    meta = report[-1].metadata if report else {}
    return {
        "success": result.success,
        "checks": checks,
        "certified": bool(meta["certified"].value) if "certified" in meta else False,
        "html_path": meta["html_path"].value if "html_path" in meta else None,
    }


def watch_daemon(instance, day: date, timeout: float, env: dict[str, str]) -> list:
    """Run `dagster-daemon` (with `env`) until the sensor's recovery runs for `day` have all finished
    and no new one came for 25 s (two sensor evaluations); return their records, oldest first."""
    import dagster as dg

    daemon = Path(sys.executable).with_name("dagster-daemon")
    log_path = Path(env["DAGSTER_HOME"]) / "demo-daemon.log"
    done_states = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(daemon), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, quiet_since, seen = time.monotonic() + timeout, None, 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                print(f"dagster-daemon exited with {process.returncode}; see {log_path}")
                break
            records = instance.get_run_records(
                dg.RunsFilter(tags={"dagster/sensor_name": SENSOR, "dagster/partition": day.isoformat()}),
                order_by="create_timestamp",
                ascending=True,
            )
            if len(records) != seen:
                for record in records[seen:]:
                    print(f"  daemon launched {record.dagster_run.tags.get('dagster/run_key')}")
                seen, quiet_since = len(records), time.monotonic()
            finished = records and all(r.dagster_run.status in done_states for r in records)
            if finished and time.monotonic() - quiet_since > 25:
                return records
            time.sleep(1)
        return instance.get_run_records(
            dg.RunsFilter(tags={"dagster/sensor_name": SENSOR, "dagster/partition": day.isoformat()}),
            order_by="create_timestamp",
            ascending=True,
        )
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the daemon's session (daemon, code server, run workers), wait for the daemon, give
    the rest of the session 10 s more, then SIGKILL whatever is left: none outlives the demo."""
    import contextlib
    import signal

    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    deadline = time.monotonic() + 10  # bounded: an orphan nobody reaps still answers as a zombie
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait()
