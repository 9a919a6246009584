"""`stock-pipelines demo`: the whole product on this machine, no settings, no network.

The recovery is launched by the Dagster daemon's sensor, not called by the demo:

1. the embedded Redis and the simulated KRX exchange (KIS protocol) on 127.0.0.1;
2. `sim day`: the latest closed session's archive as a collector would have written it, with two
   outages and a few corrupted lines, and the collector's heartbeats in Redis to match: it went
   down twice and came back (UP events), and beats on (HeartbeatPublisher) while the demo runs;
3. one shared fake clock (STOCK_PIPELINES_FAKE_NOW, see ops/clock.py) running from 15:28:30 on that
   day, for the exchange and the daemon, so the session is "live";
4. `dagster-daemon` on DAGSTER_HOME (the repository's dagster_home/ by default, so `./run ui` or
   `stock-pipelines ui` shows the runs afterwards): collector_heartbeat_sensor reads the two
   restarts from the event stream, measures the lost trading time and launches the recovery run
   of the day (raw_ticks ->
   tick_minute_bars -> gap_report -> recovered_minute_bars -> minute_bars); the demo only waits;
5. `end_of_day_job` for the day, as the schedule runs it after the close: every asset check (the
   quality checks ask the simulator for day volumes and a sample of bars), then `quality_report`;
6. a summary: completeness against the exchange's own bars before and after recovery, the broker
   calls it took (counted by the exchange) against the lower bound of the symbol-minutes the
   outages removed, the time from the daemon's start to the sensor's launch, the checks and whether
   the day is certified (the demo exits 1 unless every bar is back, the day is certified and the
   calls stay within 1.1x of that bound).

The demo keeps to its own Redis namespace (key prefix `<prefix>-demo`, e.g. ``sp-demo``): its
simulated collector, heartbeats, governance state and fake clock stay there, and the heartbeat
sensor keeps a cursor per namespace (`ops.cursor_namespaces`), so `./run ui` afterwards shows the
demo's runs, checks and report but its sensors never take `sim-kis-1` for a real collector.
Everything the demo starts ends with it: the simulator, the daemon's whole process group and the
embedded Redis (unless another process still uses it).

Re-running the demo replays the same day: it clears its namespace in Redis, deletes the earlier
demo runs of that day and resets its namespace's entry of the sensor cursor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

DEMO_CREDENTIALS = {"demo-app-key": "demo-app-secret"}  # the simulator accepts any pair; not a real broker's
DEFAULT_OUTAGES = ["10:00-10:25", "13:40-13:52"]
DEMO_COLLECTOR = "sim-kis-1"
CLOCK_START = (15, 28, 30)  # the fake "now" when the daemon starts
SEED_BEAT_S = 10
SENSOR = "collector_heartbeat_sensor"
NAMESPACE_SUFFIX = "-demo"  # the demo's Redis key prefix: the installation's prefix + this
REPO_ROOT = Path(__file__).resolve().parents[2]
CALLS_OVER_BOUND_MAX = 1.1  # the recovery may spend at most 10% more calls than the lower bound


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from stock_pipelines.commands.arguments import int_range, positive_number

    parser = subparsers.add_parser("demo", help="run the end-to-end demo on the embedded default")
    parser.add_argument("--date", help="trading day to simulate (default: the latest closed session)")
    parser.add_argument(
        "--symbols", type=int_range(1, 9_999), default=40, help="universe size (default 40)"
    )
    parser.add_argument("--seed", type=int, default=20261120)
    parser.add_argument(
        "--outage",
        action="append",
        metavar="HH:MM-HH:MM",
        help=f"collector outage (repeatable; default {' and '.join(DEFAULT_OUTAGES)})",
    )
    parser.add_argument(
        "--corrupt", type=int_range(0, 1_000_000), default=8, help="corrupted archive lines (default 8)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_number(86_400),
        default=300,
        help="seconds to wait for the daemon (default 300)",
    )
    parser.add_argument(
        "--collector",
        choices=["replay", "live"],
        default="replay",
        help="replay: a written archive and the daemon's sensor launch the recovery (default); "
        "live: the real collector records the day from the exchange at 300x, then the pipeline runs",
    )
    parser.set_defaults(func=run)


def latest_closed_session(now: datetime) -> date:
    from stock_pipelines.market import krx_calendar

    calendar = krx_calendar()
    day = now.date()
    session = calendar.session(day)
    if session is not None and now >= session.close:
        return day
    previous = calendar.previous_trading_day(day)
    assert previous is not None
    return previous


def seed_heartbeats(client, day: date, session, outages, now) -> None:
    """The collector's Redis trail for the day: up from 5 minutes before the open, down in each
    outage (an UP event when it came back), beating up to `now()`, read again until the trail
    has caught up (writing it takes seconds of the running fake clock; a hole left at its end
    would read as a third outage when the publisher's UP comes)."""
    from stock_pipelines.heartbeat import Heartbeat, HeartbeatStore
    from stock_pipelines.heartbeat.model import LifecycleEvent

    store = HeartbeatStore(client)
    started = session.open - timedelta(minutes=5)
    pieces, cursor = [], started
    for outage in sorted(outages, key=lambda o: o.start):
        pieces.append((cursor, outage.start))
        cursor = outage.end
    pieces.append((cursor, None))
    for index, (start, end) in enumerate(pieces):
        if index:
            store.event(DEMO_COLLECTOR, LifecycleEvent.UP, start)
        beat_at = start
        while beat_at < (end or now()):
            store.beat(Heartbeat(DEMO_COLLECTOR, "demo", 0, start, beat_at, (), None, interval_s=SEED_BEAT_S))
            beat_at += timedelta(seconds=SEED_BEAT_S)
        store.beat(Heartbeat(DEMO_COLLECTOR, "demo", 0, start, end or now(), (), None, interval_s=SEED_BEAT_S))


def outage_lower_bound(outages, codes, day: date) -> tuple[int, int]:
    """(calls, symbol-minutes): the fewest broker calls that can return every symbol-minute the
    planted outages removed, and how many those are. From the outages alone, never from the plan:
    every symbol loses the minutes an outage touches; the recovery runs on that day, so the
    endpoint's page is today's."""
    from stock_pipelines.recovery.plan import ceil_minute, floor_minute, lower_bound_calls, missing_slots

    minutes = [(floor_minute(outage.start), ceil_minute(outage.end)) for outage in outages]
    missing = {code: minutes for code in codes}
    return lower_bound_calls(missing, day, today=day), missing_slots(missing, day)


def use_demo_namespace() -> str:
    """Point this process and everything it starts at the demo's own Redis key prefix."""
    from stock_pipelines.redis_conn import ENV_PREFIX, key_prefix

    prefix = key_prefix()
    if not prefix.endswith(NAMESPACE_SUFFIX):
        prefix += NAMESPACE_SUFFIX
    os.environ[ENV_PREFIX] = prefix
    return prefix


def reset_demo_state(client, instance, day: date) -> None:
    """Clear the demo's namespace (never the real one), its earlier runs of the day and its
    entry of the heartbeat sensor's cursor."""
    from stock_pipelines.ops.cursor_namespaces import with_cursor
    from stock_pipelines.redis_conn import key_prefix

    prefix = key_prefix()
    assert prefix.endswith(NAMESPACE_SUFFIX), f"the demo resets only its own namespace, not {prefix!r}"
    for name in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(name)
    import dagster as dg

    old = [
        *instance.get_run_records(
            dg.RunsFilter(tags={"dagster/sensor_name": SENSOR, "dagster/partition": day.isoformat()})
        ),
        *instance.get_run_records(
            dg.RunsFilter(tags={"stock_pipelines/demo": "true", "dagster/partition": day.isoformat()})
        ),
    ]
    for record in old:
        instance.delete_run(record.dagster_run.run_id)
    for state in instance.all_instigator_state():
        if state.name == SENSOR and state.instigator_data is not None:
            data = state.instigator_data
            instance.update_instigator_state(
                state.with_data(data._replace(cursor=with_cursor(data.cursor, prefix, None)))
            )


def run(args: argparse.Namespace) -> int:
    import dagster as dg
    import httpx

    from stock_pipelines import embedded_redis, lake
    from stock_pipelines.commands import UsageError
    from stock_pipelines.commands.calendar import parse_day
    from stock_pipelines.heartbeat import HeartbeatPublisher, HeartbeatStore, Snapshot
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.ops import clock
    from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
    from stock_pipelines.redis_conn import embedded_redis_url, key_prefix, redis_client
    from stock_pipelines.settings import Settings
    from stock_pipelines.sim.archive_day import Outage, write_day_archive
    from stock_pipelines.sim.day import SimDay
    from stock_pipelines.sim.runner import run_exchange_process

    started = time.monotonic()
    use_demo_namespace()
    day = parse_day(args.date) if args.date else latest_closed_session(clock.now())
    session = krx_calendar().session(day)
    if session is None:
        raise UsageError(f"{day} is not a KRX trading day")
    if args.collector == "live":
        from stock_pipelines.commands.demo_live import run_live

        return run_live(args, day, session, DEMO_CREDENTIALS)
    try:
        outages = [Outage.parse(text, day) for text in (args.outage or DEFAULT_OUTAGES)]
    except ValueError as error:
        raise UsageError(str(error)) from None
    clock_start = session.close.replace(hour=CLOCK_START[0], minute=CLOCK_START[1], second=CLOCK_START[2])
    if session.close - clock_start < timedelta(minutes=1):
        clock_start = session.close - timedelta(seconds=90)
    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / "dagster_home"))
    print(
        f"demo day {day} (session {session.open:%H:%M}-{session.close:%H:%M} KST), "
        f"{args.symbols} symbols, data in {settings.data_dir}"
    )

    redis = redis_client()
    redis.ping()
    namespace = f"keys under {key_prefix()}:"
    if os.environ.get("REDIS_URL"):
        print(f"redis: REDIS_URL answering, {namespace}")
    else:
        os.environ["REDIS_URL"] = embedded_redis_url()  # the daemon and its runs share this server
        server = embedded_redis.describe() or {}
        print(
            f"redis: embedded server pid {server.get('pid')} answering, {namespace}, "
            f"stops {server.get('stops')}"
        )

    sim = SimDay(day, seed=args.seed, symbols=args.symbols)
    exchange_args = [
        "--date",
        day.isoformat(),
        "--seed",
        str(args.seed),
        "--symbols",
        str(args.symbols),
        "--pin",
        "--start",
        f"{clock_start:%H:%M}",
    ]
    with run_exchange_process(exchange_args) as url, dg.DagsterInstance.get() as instance:
        print(f"simulated exchange: {url}")
        httpx.post(
            f"{url}/admin/clock",
            json={"at": clock_start.isoformat(), "pinned": False, "speed": 1},
            timeout=10,
        ).raise_for_status()
        ((app_key, app_secret),) = DEMO_CREDENTIALS.items()
        os.environ.update(
            KIS_BASE_URL=str(url),
            KIS_APP_KEY=app_key,
            KIS_APP_SECRET=app_secret,
            STOCK_PIPELINES_BROKER="kis",
            **{ENV_FAKE_NOW: fake_now_value(clock_start, time.time())},
        )
        archived = write_day_archive(
            settings.archive_dir,
            day,
            seed=args.seed,
            symbols=args.symbols,
            collector=DEMO_COLLECTOR,
            outages=outages,
            corrupt=args.corrupt,
            sim=sim,
        )
        print(
            f"sim day: {archived.trades_written:,} of {archived.trades_total:,} trades archived "
            f"({archived.trades_missing:,} lost to outages {', '.join(a + '-' + b for a, b in archived.outages)}), "
            f"{len(archived.corrupt)} corrupted lines"
        )
        reset_demo_state(redis, instance, day)
        seed_heartbeats(redis, day, session, outages, clock.now)
        publisher = HeartbeatPublisher(
            HeartbeatStore(redis), DEMO_COLLECTOR, lambda: Snapshot((), None), interval_s=5.0, clock=clock.now
        )
        publisher.start()
        print(
            f"collector {DEMO_COLLECTOR}: heartbeats in Redis with {len(outages)} restarts, beating on; "
            f"exchange clock at {clock_start:%H:%M:%S}; starting the Dagster daemon"
        )
        daemon_started = time.time()
        try:
            runs = watch_daemon(instance, day, args.timeout)
        finally:
            publisher.stop("demo over")
        stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
        recovered_ok = bool(runs) and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        if recovered_ok:
            # what the sensor's recovery achieved, before the end-of-day run rebuilds the day
            before = lake.read_partition("tick_minute_bars", day).height
            final = lake.read_partition("minute_bars", day)
            after = final.height
            by_source = dict(final.group_by("source").len().sort("source").iter_rows())
            # the schedule runs the end of day 10 minutes after the close: both clocks go there
            after_close = session.close + timedelta(minutes=10)
            httpx.post(
                f"{url}/admin/clock", json={"at": after_close.isoformat(), "pinned": True}, timeout=10
            ).raise_for_status()
            os.environ[ENV_FAKE_NOW] = fake_now_value(after_close)
            end_of_day = run_end_of_day(instance, day)
    truth = sum(len(sim.minute_bars(code)) for code in sim.codes)

    if not recovered_ok:
        states = ", ".join(f"{r.dagster_run.run_id[:8]} {r.dagster_run.status.value}" for r in runs) or "none"
        print(f"the sensor-launched recovery did not succeed (runs: {states}); see `stock-pipelines ui`")
        return 1
    first_launch = runs[0].create_timestamp.timestamp() - daemon_started
    run_ids = {r.dagster_run.run_id for r in runs}
    recovered = _metadata(instance, "recovered_minute_bars", day, run_ids)
    gaps = _metadata(instance, "gap_report", day, run_ids)[-1].get("gaps", 0)
    raw = _metadata(instance, "raw_ticks", day, run_ids)[-1]
    last = recovered[-1]
    bound, missing_minutes = outage_lower_bound(outages, sim.codes, day)
    exchange_calls = sum(stats["calls"].get(name, 0) for name in ("kis_itemchart", "kis_dailychart"))
    summary = {
        "day": day.isoformat(),
        "quarantined_lines": raw.get("quarantined", 0),
        "gaps_found": gaps,
        "bars_expected": truth,
        "completeness_before": round(before / truth, 6),
        "completeness_after": round(after / truth, 6),
        "bars_by_source": by_source,
        "broker_calls": sum(m.get("calls", 0) for m in recovered),
        "exchange_minute_bar_calls": exchange_calls,
        "retries": last.get("retries", {}),
        "missing_symbol_minutes": missing_minutes,
        "lower_bound_calls": bound,
        "calls_vs_lower_bound": round(exchange_calls / bound, 3) if bound else None,
        "rate_limit_errors": stats["rate_limited"],
        "windows_unrecovered": last.get("windows_unrecovered", 0),
        "recovery_runs": len(runs),
        "daemon_start_to_first_launch_s": round(first_launch, 1),
        "end_of_day_checks": end_of_day["checks"],
        "certified": end_of_day["certified"],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(
        f"the daemon's sensor launched {len(runs)} recovery run(s), the first {first_launch:.1f} s after the "
        "daemon started; all succeeded"
    )
    print(
        f"completeness: {before:,}/{truth:,} bars before recovery ({before / truth:.2%}), "
        f"{after:,}/{truth:,} after ({after / truth:.2%}); bars by source: "
        + ", ".join(f"{source} {count:,}" for source, count in by_source.items())
    )
    within = exchange_calls <= CALLS_OVER_BOUND_MAX * bound
    print(
        f"broker calls: {exchange_calls} over {len(runs)} run(s), lower bound {bound} for the "
        f"{missing_minutes:,} symbol-minutes the outages removed ({summary['calls_vs_lower_bound']}x"
        f"{'' if within else f', over the {CALLS_OVER_BOUND_MAX}x allowed'}), "
        f"rate-limit errors: {summary['rate_limit_errors']}"
    )
    failed = [name for name, passed in end_of_day["checks"].items() if not passed]
    print(
        f"end_of_day_job: {len(end_of_day['checks']) - len(failed)}/{len(end_of_day['checks'])} checks passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; quality report: {'CERTIFIED' if end_of_day['certified'] else 'NOT CERTIFIED'}"
        + (f", {end_of_day['html_path']}" if end_of_day["html_path"] else "")
    )
    print(json.dumps(summary))
    return 0 if after == truth and end_of_day["certified"] and within else 1


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


def watch_daemon(instance, day: date, timeout: float) -> list:
    """Run `dagster-daemon` until the sensor's recovery runs for `day` have all finished and no new
    one came for 25 s (two sensor evaluations); return their records, oldest first."""
    import dagster as dg

    daemon = Path(sys.executable).with_name("dagster-daemon")
    log_path = Path(os.environ["DAGSTER_HOME"]) / "demo-daemon.log"
    done_states = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(daemon), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
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


def _metadata(instance, asset: str, day: date, run_ids: set[str]) -> list[dict]:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day.isoformat()]), limit=50
    ).records
    found = [
        {k: v.value for k, v in r.asset_materialization.metadata.items()}
        for r in sorted(records, key=lambda r: r.timestamp)
        if r.run_id in run_ids
    ]
    return found or [{}]
