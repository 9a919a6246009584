"""`stock-pipelines sim exchange|day`: the simulated KRX exchange and archived simulated days."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from stock_pipelines.commands import UsageError
from stock_pipelines.commands.arguments import int_range, positive_number, tcp_port


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sim", help="the simulated KRX exchange and simulated archive days")
    sim = parser.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")

    exchange = sim.add_parser(
        "exchange",
        help="serve simulated trading days over the KIS/Kiwoom protocols (REST + WebSocket)",
        description="Serve deterministic simulated trading days, from --date on as the clock passes sessions, "
        "on KIS and Kiwoom REST endpoints and the KIS H0STCNT0 WebSocket, with an admin API (/admin/faults, /admin/clock, /admin/stats). "
        "Prints one JSON line with the base URL once it accepts connections.",
    )
    exchange.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    exchange.add_argument("--port", type=tcp_port, default=8700, help="port (0: any free port; default 8700)")
    _day_options(exchange)
    exchange.add_argument("--speed", type=positive_number(100_000), default=1.0, help="simulated seconds per second (default 1)")
    exchange.add_argument("--start", metavar="HH:MM", help="clock start on the day (default: the open)")
    exchange.add_argument("--pin", action="store_true", help="pin the clock at the start instead of running")
    exchange.add_argument("--overnight", choices=("run", "skip"), default="run",
                          help="between sessions: run at --night-speed, or skip to 10 min before the next open "
                          "(default run)")
    exchange.add_argument("--night-speed", type=positive_number(10_000_000), metavar="X",
                          help="simulated seconds per second between sessions (default: --speed)")
    exchange.add_argument("--day-cache", type=int_range(1, 1_000), default=8, metavar="N",
                          help="simulated days held in memory, least recently used evicted (default 8)")
    exchange.add_argument("--rate-limit", type=int_range(1, 100_000), default=20, help="KIS calls a second per app key (default 20)")
    exchange.add_argument("--kiwoom-rate-limit", type=int_range(1, 100_000), default=5, help="Kiwoom calls a second (default 5)")
    exchange.set_defaults(func=run_exchange)

    day = sim.add_parser(
        "day",
        help="write a simulated day's JSONL archive as a collector would have",
        description="Write one simulated day into the archive layout (docs/archive-format.md), with outage "
        "windows missing (and the system stream to match) and N corrupted lines. Prints a JSON summary.",
    )
    _day_options(day)
    day.add_argument("--out", required=True, type=Path, metavar="ARCHIVE_DIR", help="archive root")
    day.add_argument("--collector", default="sim-kis-1", help="collector id (default sim-kis-1)")
    day.add_argument("--outage", action="append", default=[], metavar="HH:MM-HH:MM", help="collector down (repeat)")
    day.add_argument("--corrupt", type=int_range(0, 1_000_000), default=0, metavar="N", help="add N corrupted lines (default 0)")
    day.add_argument("--truth", type=Path, metavar="FILE.parquet", help="also write every trade and its fate here")
    day.set_defaults(func=run_day)


def _day_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", metavar="YYYY-MM-DD", help="trading day (default: today or the last trading day)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--symbols", type=int, default=40, help="universe size (default 40, up to 9999)")
    parser.add_argument("--activity", type=float, default=1.0, help="trade-rate multiplier (default 1)")


def _resolve_day(text: str | None) -> date:
    from stock_pipelines.market import CalendarRangeError
    from stock_pipelines.sim.exchange_config import ExchangeConfig
    from stock_pipelines.sim.sessions import NotATradingDay, trading_session

    if text is None:
        return ExchangeConfig().resolved_day()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date: expected YYYY-MM-DD, e.g. 2026-11-20") from None
    try:
        trading_session(day)
    except (NotATradingDay, CalendarRangeError) as error:
        raise UsageError(str(error)) from None
    return day


def _check_universe(args: argparse.Namespace) -> None:
    if not 1 <= args.symbols <= 9_999:
        raise UsageError(f"--symbols must be 1..9999, not {args.symbols}")
    if not 0 < args.activity <= 1_000:
        raise UsageError(f"--activity must be in (0, 1000], not {args.activity}")


def run_exchange(args: argparse.Namespace) -> int:
    from stock_pipelines.sim.runner import bind_socket, make_server
    from stock_pipelines.sim.exchange_config import ExchangeConfig, session_start
    from stock_pipelines.sim.server import Exchange

    _check_universe(args)
    day = _resolve_day(args.date)
    if args.speed <= 0 or args.rate_limit < 1 or args.kiwoom_rate_limit < 1:
        raise UsageError("--speed must be > 0 and rate limits >= 1")
    try:
        start = session_start(day, args.start)
    except ValueError:
        raise UsageError(f"--start {args.start!r} is not HH:MM") from None
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    exchange = Exchange(
        ExchangeConfig(
            day=day, seed=args.seed, symbols=args.symbols, activity=args.activity, speed=args.speed,
            start=start, pinned=args.pin, rate_limit=args.rate_limit, kiwoom_rate_limit=args.kiwoom_rate_limit,
            overnight=args.overnight, night_speed=args.night_speed, day_cache=args.day_cache,
        )
    )
    host, port = sock.getsockname()[:2]
    server = make_server(exchange, log_level="warning")
    print(json.dumps({"url": f"http://{host}:{port}", "date": day.isoformat(), "symbols": args.symbols,
                      "seed": args.seed, "clock": exchange.clock.state(),
                      "fake_now": _project_clock_value(exchange.clock)}), flush=True)
    server.run(sockets=[sock])
    return 0


def _project_clock_value(clock) -> str | None:
    """The STOCK_PIPELINES_FAKE_NOW that keeps the project clock on this exchange's timeline, at its
    day and night speeds (a skipped night is a jump the project clock cannot follow: None)."""
    import time

    from stock_pipelines.ops.clock import fake_now_value

    state = clock.state()
    if state["pinned"]:
        return fake_now_value(clock.now())
    if state["overnight"] != "run":
        return None
    wall = time.time()
    return fake_now_value(clock.now(), wall, speed=state["day_speed"], night_speed=state["night_speed"])


def run_day(args: argparse.Namespace) -> int:
    from stock_pipelines.archive.layout import InvalidCollectorId
    from stock_pipelines.sim.archive_day import Outage, write_day_archive

    _check_universe(args)
    day = _resolve_day(args.date)
    if args.corrupt < 0:
        raise UsageError(f"--corrupt must be >= 0, not {args.corrupt}")
    if args.truth is not None and args.truth.resolve().is_relative_to(args.out.resolve()):
        raise UsageError(f"--truth {args.truth} is inside the archive {args.out}: keep the ground truth outside it")
    try:
        outages = [Outage.parse(text, day) for text in args.outage]
        result = write_day_archive(
            args.out, day, seed=args.seed, symbols=args.symbols, activity=args.activity,
            collector=args.collector, outages=outages, corrupt=args.corrupt, truth=args.truth,
        )
    except (ValueError, InvalidCollectorId) as error:
        raise UsageError(str(error)) from None
    json.dump(result.summary(), sys.stdout, ensure_ascii=False)
    print()
    return 0
