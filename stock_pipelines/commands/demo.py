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

`run` composes three stages that hand each other values: `demo_stage` (steps 1-3),
`demo_watch` (4-5) and `demo_summary` (6). What the daemon, its runs and this process's own
Redis and clock code read from the environment is set in one place here, for the command's
duration (`ScopedEnvironment`).
"""

from __future__ import annotations

import argparse
import os
import time

from stock_pipelines.commands.demo_stage import DEFAULT_OUTAGES, DEMO_CREDENTIALS, REPO_ROOT


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


def run(args: argparse.Namespace) -> int:
    import dagster as dg
    import httpx

    from stock_pipelines.commands.demo_stage import demo_day, demo_prefix, demo_session, redis_for_demo, stage
    from stock_pipelines.commands.demo_summary import summarize
    from stock_pipelines.commands.demo_watch import watch
    from stock_pipelines.commands.scoped_environment import ScopedEnvironment
    from stock_pipelines.ops import clock
    from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
    from stock_pipelines.redis_conn import ENV_PREFIX, configured, current, key_prefix
    from stock_pipelines.settings import Settings, configure_process
    from stock_pipelines.sim.day import SimDay
    from stock_pipelines.sim.runner import run_exchange_process

    started = time.monotonic()
    # the environment and the process's Redis settings, both restored when the demo ends
    with ScopedEnvironment() as environment, configured(current()):
        environment.set(**{ENV_PREFIX: demo_prefix(key_prefix())})
        configure_process()
        day, session = demo_session(args, clock.now())
        if args.collector == "live":
            from stock_pipelines.commands.demo_live import run_live

            return run_live(args, day, session, DEMO_CREDENTIALS)
        demo = demo_day(args, day, session)
        settings = Settings.from_env()
        dagster_home = os.environ.get("DAGSTER_HOME", str(REPO_ROOT / "dagster_home"))
        os.makedirs(dagster_home, exist_ok=True)  # Dagster refuses a DAGSTER_HOME that does not exist yet
        environment.set(DAGSTER_HOME=dagster_home)
        print(
            f"demo day {day} (session {session.open:%H:%M}-{session.close:%H:%M} KST), "
            f"{args.symbols} symbols, data in {settings.data_dir}"
        )
        redis, redis_url = redis_for_demo(os.environ.get("REDIS_URL"))
        environment.set(REDIS_URL=redis_url)  # the daemon and its runs share this server
        configure_process()
        sim = SimDay(day, seed=args.seed, symbols=args.symbols)
        with run_exchange_process(demo.exchange_args()) as url, dg.DagsterInstance.get() as instance:
            print(f"simulated exchange: {url}")
            httpx.post(
                f"{url}/admin/clock",
                json={"at": demo.clock_start.isoformat(), "pinned": False, "speed": 1},
                timeout=10,
            ).raise_for_status()
            ((app_key, app_secret),) = DEMO_CREDENTIALS.items()
            environment.set(
                KIS_BASE_URL=str(url),
                KIS_APP_KEY=app_key,
                KIS_APP_SECRET=app_secret,
                STOCK_PIPELINES_BROKER="kis",
                **{ENV_FAKE_NOW: fake_now_value(demo.clock_start, time.time())},
            )
            publisher = stage(demo, redis, instance, sim, settings.archive_dir, clock.now)
            watched = watch(demo, url, instance, publisher, environment, args.timeout)
        return summarize(demo, watched, instance, sim, started)
