"""`stock-pipelines collector run|status`: the live trade collector, KIS or Kiwoom with failover to
the other (docs/collector.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from stock_pipelines.commands import UsageError
from stock_pipelines.commands.arguments import tcp_port


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("collector", help="run the live trade collector, or show its status")
    sub = parser.add_subparsers(dest="collector_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run", help="collect real-time trades over the KIS or Kiwoom WebSocket into the archive",
        description="Connect to the broker's real-time WebSocket (KIS H0STCNT0 or Kiwoom 0B, sharded at 40 "
        "symbols a session), archive every trade, heartbeat to Redis, reconnect, and fail over to the "
        "--fallback broker and back on its own; SIGTERM stops it cleanly. Checks its settings, Redis, the "
        "archive, the disk floor and each broker's credentials first: exit 1 on any problem.",
    )
    run.add_argument("--symbols", required=True, metavar="FILE|LIST",
                     help="file of codes, or 005930,000660,...")
    run.add_argument("--source", default="kis", choices=["kis", "kiwoom"], help="primary feed (default kis)")
    run.add_argument("--fallback", choices=["kis", "kiwoom"],
                     help="the other broker's feed to fail over to when the primary drops, stalls or refuses "
                          "(default: none, or a second KIS key when KIS_SECONDARY_APP_KEY is set)")
    run.add_argument("--standby", choices=["hot", "cold"],
                     help="with a fallback: 'hot' (default, $STOCK_PIPELINES_COLLECTOR_STANDBY) streams both "
                          "brokers all the time and archives each trade once, so a fail-over loses nothing, "
                          "at twice the sessions; 'cold' connects the fallback on the primary's first failure")
    run.add_argument("--id", default=os.environ.get("STOCK_PIPELINES_COLLECTOR_ID", "kis-1"),
                     help="collector id (default $STOCK_PIPELINES_COLLECTOR_ID or kis-1)")
    run.add_argument("--clock", choices=["system", "exchange"],
                     default=os.environ.get("STOCK_PIPELINES_COLLECTOR_CLOCK", "system"),
                     help="time source: this machine, or the simulated exchange's GET /admin/clock")
    run.add_argument("--metrics-port", type=tcp_port,
                     default=os.environ.get("STOCK_PIPELINES_COLLECTOR_METRICS_PORT", "0"),
                     help="serve /metrics and /health on this port (default "
                     "$STOCK_PIPELINES_COLLECTOR_METRICS_PORT or 0: off)")
    run.add_argument("--metrics-host", default=os.environ.get("STOCK_PIPELINES_METRICS_HOST", "127.0.0.1"),
                     help="address the metrics port binds ($STOCK_PIPELINES_METRICS_HOST, default 127.0.0.1)")
    run.set_defaults(func=run_collector)
    status = sub.add_parser("status", help="print each collector's state and stage counters (JSON)")
    status.add_argument("--id", help="one collector (default: all)")
    status.set_defaults(func=show_status)


def run_collector(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import logging
    import signal

    from stock_pipelines.archive.config import ArchiveConfig, ArchiveConfigError
    from stock_pipelines.archive.layout import InvalidCollectorId, check_collector_id
    from stock_pipelines.collector.config import (
        CollectorSettings,
        ConfigError,
        parse_symbols,
        sources_from_env,
    )
    from stock_pipelines.collector.diagnose import diagnose
    from stock_pipelines.redis_conn import redis_client
    from stock_pipelines.settings import Settings

    try:
        check_collector_id(args.id)
        symbols = parse_symbols(args.symbols)
        settings = CollectorSettings.from_env(os.environ)
        if args.standby is not None:
            settings = dataclasses.replace(settings, standby=args.standby)
        archive = ArchiveConfig.from_env(os.environ)
        sources, problems = sources_from_env(os.environ, args.source, args.fallback)
    except (ConfigError, InvalidCollectorId, ArchiveConfigError) as error:
        raise UsageError(str(error)) from None
    token_dir = Settings.from_env(os.environ).data_dir / ".tokens"  # shared with the REST clients
    problems = diagnose(sources, problems, len(symbols), settings, archive.archive_dir, args.id,
                        archive.min_free_bytes, redis_client, token_dir)
    if problems:
        for problem in problems:
            print(f"collector {args.id}: {problem}", file=sys.stderr)
        return 1

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    clock = None
    if args.clock == "exchange":
        from stock_pipelines.collector.clock import ExchangeClock

        clock = ExchangeClock(sources[0].base_url)

    from stock_pipelines.collector.runner import Collector

    collector = Collector(args.id, symbols, sources, archive.archive_dir, redis_client(), settings,
                          clock=clock,
                          fallback_root=archive.fallback_dir, min_free_bytes=archive.min_free_bytes,
                          token_dir=token_dir)
    metrics = None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(json.dumps({"collector": args.id, "symbols": len(symbols), "shards": len(collector.shards),
                          "sources": [s.name for s in sources], "brokers": [s.broker for s in sources],
                          "pid": os.getpid()}), flush=True)
        await collector.run(stop)

    try:
        metrics = _serve_metrics(collector, args)
        asyncio.run(main())
    finally:
        if clock is not None:
            clock.close()
        if metrics is not None:
            metrics.close()
    if collector.fatal is not None:
        print(f"collector {args.id}: {collector.fatal}", file=sys.stderr)
        return 1
    return 0


def _serve_metrics(collector, args: argparse.Namespace):
    if not args.metrics_port:
        return None
    from stock_pipelines.collector.metrics import serve

    try:
        return serve(collector, args.metrics_host, args.metrics_port)
    except OSError as error:
        raise UsageError(f"--metrics-port {args.metrics_port}: cannot serve on "
                         f"{args.metrics_host}:{args.metrics_port}: {error}") from None


def show_status(args: argparse.Namespace) -> int:
    from stock_pipelines.collector.status import read_status
    from stock_pipelines.heartbeat import HeartbeatStore
    from stock_pipelines.redis_conn import redis_client

    client = redis_client()
    statuses = read_status(client, args.id)
    store = HeartbeatStore(client)
    ages = store.collectors()
    for name, status in statuses.items():
        status["heartbeat_age_s"] = round(ages[name], 1) if name in ages else None
        print(json.dumps({"collector": name, **status}, ensure_ascii=False))
    if args.id and not statuses:
        print(f"collector {args.id}: no status in Redis", file=sys.stderr)
        return 1
    return 0
