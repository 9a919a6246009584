"""`stock-pipelines demo`: the whole product on this machine, no settings, no network.

1. the embedded Redis and the simulated KRX exchange (KIS protocol) on 127.0.0.1;
2. `sim day`: the latest closed session's archive as a collector would have written it, with two
   outages and a few corrupted lines;
3. the day's assets, materialized in the Dagster instance of DAGSTER_HOME (so `./run ui` shows
   them afterwards): raw_ticks -> tick_minute_bars -> gap_report -> recovered_minute_bars ->
   minute_bars;
4. a summary: completeness against the exchange's own bars before and after recovery, and the
   broker calls it took.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date, datetime, timedelta

DEMO_CREDENTIALS = {"demo-app-key": "demo-app-secret"}  # the simulator accepts any pair; not a real broker's
DEFAULT_OUTAGES = ["10:00-10:25", "13:40-13:52"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on the embedded default")
    parser.add_argument("--date", help="trading day to simulate (default: the latest closed session)")
    parser.add_argument("--symbols", type=int, default=40, help="universe size (default 40)")
    parser.add_argument("--seed", type=int, default=20261120)
    parser.add_argument("--outage", action="append", metavar="HH:MM-HH:MM",
                        help=f"collector outage (repeatable; default {' and '.join(DEFAULT_OUTAGES)})")
    parser.add_argument("--corrupt", type=int, default=8, help="corrupted archive lines (default 8)")
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


def run(args: argparse.Namespace) -> int:
    import dagster as dg
    import httpx

    from stock_pipelines import lake
    from stock_pipelines.commands import UsageError
    from stock_pipelines.commands.calendar import parse_day
    from stock_pipelines.defs.assets.raw_ticks import raw_ticks
    from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
    from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
    from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
    from stock_pipelines.market import SEOUL, krx_calendar
    from stock_pipelines.redis_conn import redis_client
    from stock_pipelines.settings import Settings
    from stock_pipelines.sim.archive_day import Outage, write_day_archive
    from stock_pipelines.sim.day import SimDay
    from stock_pipelines.sim.runner import run_exchange_process

    started = time.monotonic()
    day = parse_day(args.date) if args.date else latest_closed_session(datetime.now(SEOUL))
    session = krx_calendar().session(day)
    if session is None:
        raise UsageError(f"{day} is not a KRX trading day")
    try:
        outages = [Outage.parse(text, day) for text in (args.outage or DEFAULT_OUTAGES)]
    except ValueError as error:
        raise UsageError(str(error)) from None
    settings = Settings.from_env()
    print(f"demo day {day} (session {session.open:%H:%M}-{session.close:%H:%M} KST), "
          f"{args.symbols} symbols, data in {settings.data_dir}")

    redis = redis_client()
    redis.ping()
    print(f"redis: {'REDIS_URL' if os.environ.get('REDIS_URL') else 'embedded server'} answering")

    # The exchange runs in its own process, as a broker does: in-process it would share the GIL
    # with the pipeline and answer late, in bursts, which no real exchange is obliged to absorb.
    sim = SimDay(day, seed=args.seed, symbols=args.symbols)
    exchange_args = ["--date", day.isoformat(), "--seed", str(args.seed), "--symbols", str(args.symbols),
                     "--pin", "--start", f"{session.close + timedelta(hours=1):%H:%M}"]
    with run_exchange_process(exchange_args) as url:
        print(f"simulated exchange: {url}")
        (app_key, app_secret), = DEMO_CREDENTIALS.items()
        os.environ.update(KIS_BASE_URL=str(url), KIS_APP_KEY=app_key, KIS_APP_SECRET=app_secret,
                          STOCK_PIPELINES_BROKER="kis")
        archived = write_day_archive(settings.archive_dir, day, seed=args.seed, symbols=args.symbols,
                                     outages=outages, corrupt=args.corrupt, sim=sim)
        print(f"sim day: {archived.trades_written:,} of {archived.trades_total:,} trades archived "
              f"({archived.trades_missing:,} lost to outages {', '.join(a + '-' + b for a, b in archived.outages)}), "
              f"{len(archived.corrupt)} corrupted lines")

        assets = [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars]
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize([*assets, *raw_ticks_checks], partition_key=day.isoformat(),
                                    instance=instance, run_config=quiet, raise_on_error=False)
        stats = httpx.get(f"{url}/admin/stats").json()
        truth = sum(len(sim.minute_bars(code)) for code in sim.codes)

    if not result.success:
        print("the pipeline run failed; see the run's logs in the Dagster UI (./run ui)")
        return 1
    before = lake.read_partition("tick_minute_bars", day).height
    after = lake.read_partition("minute_bars", day).height
    meta = {k: v.value for k, v in result.asset_materializations_for_node("recovered_minute_bars")[0].metadata.items()}
    gaps = result.asset_materializations_for_node("gap_report")[0].metadata["gaps"].value
    raw = result.asset_materializations_for_node("raw_ticks")[0].metadata
    summary = {
        "day": day.isoformat(),
        "quarantined_lines": raw["quarantined"].value,
        "gaps_found": gaps,
        "bars_expected": truth,
        "completeness_before": round(before / truth, 6),
        "completeness_after": round(after / truth, 6),
        "broker_calls": meta.get("calls", 0),
        "retries": meta.get("retries", {}),
        "lower_bound_calls": meta.get("lower_bound_calls", 0),
        "rate_limit_errors": stats["rate_limited"],
        "windows_unrecovered": meta.get("windows_unrecovered", 0),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"completeness: {before:,}/{truth:,} bars before recovery ({before / truth:.2%}), "
          f"{after:,}/{truth:,} after ({after / truth:.2%})")
    print(f"broker calls: {summary['broker_calls']} (lower bound {summary['lower_bound_calls']}), "
          f"rate-limit errors: {summary['rate_limit_errors']}")
    print(json.dumps(summary))
    return 0 if after == truth else 1
