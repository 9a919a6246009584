"""`stock-pipelines demo --collector live`: a real collector records the day, then the pipeline.

Instead of a pre-written archive, the simulated exchange runs its session 300x faster than real
time and the project's own collector (KIS WebSocket, sharded, heartbeating to Redis) archives
what it streams, from 08:54 to just after the close: about 80 seconds. Then the exchange's clock
is pinned after the close and the day's assets run (raw_ticks -> ... -> minute_bars) in the
Dagster instance, with whatever the collector missed (trades in flight at a reconnect, the
shutdown) recovered from the exchange's REST bars. It keeps its data apart from the replay demo:
`<data dir>/demo-live/`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import timedelta

SPEED = 300
LIVE_COLLECTOR = "demo-kis-live"


def run_live(args: argparse.Namespace, day, session, credentials: dict[str, str]) -> int:
    import dagster as dg
    import httpx

    from stock_pipelines import lake
    from stock_pipelines.collector.demo import run_for_demo
    from stock_pipelines.defs.assets.raw_ticks import raw_ticks
    from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
    from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
    from stock_pipelines.defs.resources import default_resources
    from stock_pipelines.redis_conn import embedded_redis_url, redis_client
    from stock_pipelines.settings import Settings
    from stock_pipelines.sim.day import SimDay
    from stock_pipelines.sim.runner import run_exchange_process

    started = time.monotonic()
    base = Settings.from_env().data_dir / "demo-live"
    os.environ["STOCK_PIPELINES_DATA_DIR"] = str(base)
    os.environ["STOCK_PIPELINES_ARCHIVE_DIR"] = str(base / "archive")
    settings = Settings.from_env()
    shutil.rmtree(settings.archive_dir / LIVE_COLLECTOR, ignore_errors=True)  # the demo's own, replayed
    redis = redis_client(os.environ.get("REDIS_URL") or embedded_redis_url(settings.data_dir))
    redis.ping()
    sim = SimDay(day, seed=args.seed, symbols=args.symbols)
    (app_key, app_secret), = credentials.items()
    exchange_args = ["--date", day.isoformat(), "--seed", str(args.seed), "--symbols", str(args.symbols),
                     "--speed", str(SPEED), "--start", "08:54"]
    print(f"live demo day {day}: {args.symbols} symbols, exchange at {SPEED}x from 08:54, data in {base}")
    with run_exchange_process(exchange_args) as url:
        os.environ.update(KIS_BASE_URL=str(url), KIS_APP_KEY=app_key, KIS_APP_SECRET=app_secret,
                          STOCK_PIPELINES_BROKER="kis")
        collected = run_for_demo(str(url), list(sim.codes), session.close + timedelta(minutes=2),
                                 settings.archive_dir, collector_id=LIVE_COLLECTOR, app_key=app_key,
                                 app_secret=app_secret, redis_client=redis)
        losses = [e for e in collected.events if e.get("event") == "LOSS_WINDOW"]
        print(f"collector {LIVE_COLLECTOR}: {collected.archived:,} trades archived in {collected.seconds:.0f} s, "
              f"{len(losses)} loss window(s) reported")
        httpx.post(f"{url}/admin/clock", json={"at": (session.close + timedelta(hours=1)).isoformat(),
                                              "pinned": True}, timeout=10).raise_for_status()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize([raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars],
                                    partition_key=day.isoformat(), instance=instance, run_config=quiet,
                                    raise_on_error=False, resources=default_resources())
        stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
    if not result.success:
        print("the pipeline run failed; see its logs in the Dagster UI (stock-pipelines ui)")
        return 1
    truth = sum(len(sim.minute_bars(code)) for code in sim.codes)
    before = lake.read_partition("tick_minute_bars", day).height
    after = lake.read_partition("minute_bars", day).height
    meta = {k: v.value for k, v in result.asset_materializations_for_node("recovered_minute_bars")[0].metadata.items()}
    summary = {
        "day": day.isoformat(), "collector": LIVE_COLLECTOR, "trades_archived": collected.archived,
        "trades_exchange": int(len(sim.ts)), "loss_windows": len(losses), "bars_expected": truth,
        "completeness_before": round(before / truth, 6), "completeness_after": round(after / truth, 6),
        "broker_calls": meta.get("calls", 0), "lower_bound_calls": meta.get("lower_bound_calls", 0),
        "rate_limit_errors": stats["rate_limited"], "seconds": round(time.monotonic() - started, 1),
    }
    print(f"completeness: {before:,}/{truth:,} bars from the collector's archive ({before / truth:.2%}), "
          f"{after:,}/{truth:,} after recovery ({after / truth:.2%}); broker calls: {summary['broker_calls']}")
    print(json.dumps(summary))
    return 0 if after == truth else 1
