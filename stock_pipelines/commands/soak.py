"""`stock-pipelines soak`: a simulated trading week with faults, and its figures (docs/reliability.md)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

from stock_pipelines.commands.arguments import positive_number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "soak", help="run N simulated trading days with the fleet, Dagster and a seeded fault schedule",
        description="Start the simulated exchange (accelerated, across days), the collector fleet (both "
        "brokers), the Dagster webserver and daemon and a local alert receiver; play a seeded fault "
        "schedule; print progress on stderr, then the figures: a table, and one JSON line last. Exits 0 "
        "only when the figures pass.",
    )
    parser.add_argument("--days", type=int, help="trading days (default 5; --quick 2)")
    parser.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="first day (default 2026-11-18: the CSAT day and a weekend; --quick 2026-11-19)")
    parser.add_argument("--seed", type=int, help="fault schedule and exchange seed (default 7)")
    parser.add_argument("--speed", type=positive_number(100_000),
                        help="exchange seconds per wall second in the sessions (default 600)")
    parser.add_argument("--night-speed", type=positive_number(10_000_000),
                        help="exchange seconds per wall second between sessions (default 2400; --quick 6000)")
    parser.add_argument("--symbols", type=int, help="symbols streamed (default 12; --quick 6)")
    parser.add_argument("--activity", type=float, help="trade-rate multiplier (default 0.5; --quick 0.3)")
    parser.add_argument("--quick", action="store_true", help="the CI variant: 2 days, faster, a short fault list")
    parser.add_argument("--run-dir", type=Path, help="keep the run here (default: a temporary directory, removed)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stock_pipelines.soak.harness import SoakInterrupted
    from stock_pipelines.soak.report import run_and_report

    try:
        return _run(args, run_and_report)
    except SoakInterrupted as interrupted:
        print(f"stock-pipelines soak: interrupted ({interrupted}); every process it started is stopped",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, run_and_report) -> int:
    overrides = {"days": args.days, "start": args.start, "seed": args.seed, "speed": args.speed,
                 "night_speed": args.night_speed,
                 "symbols": args.symbols, "activity": args.activity}
    if args.run_dir is not None:
        args.run_dir.mkdir(parents=True, exist_ok=True)
        return run_and_report(args.quick, overrides, args.run_dir, dict(os.environ), sys.stdout)
    with tempfile.TemporaryDirectory(prefix="soak-") as temporary:
        return run_and_report(args.quick, overrides, Path(temporary), dict(os.environ), sys.stdout)
