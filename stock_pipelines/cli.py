"""The `stock-pipelines` command."""

from __future__ import annotations

import argparse
import importlib
import sys

from stock_pipelines import settings
from stock_pipelines.commands import UsageError, accepted_warnings
from stock_pipelines.commands.arguments import OneLineParser

# Each module adds one subcommand; heavy imports happen inside the command, not here.
COMMAND_MODULES = [
    "stock_pipelines.commands.calendar",
    "stock_pipelines.commands.collector",
    "stock_pipelines.commands.demo",
    "stock_pipelines.commands.fleet",
    "stock_pipelines.commands.metrics",
    "stock_pipelines.commands.report",
    "stock_pipelines.commands.resume",
    "stock_pipelines.commands.sim",
    "stock_pipelines.commands.soak",
    "stock_pipelines.commands.status",
    "stock_pipelines.commands.ui",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stock-pipelines",
        description="Keep a KRX tick archive complete: calendar, simulator, demo and operations.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    accepted_warnings.install()
    settings.configure_process()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as usage:  # a usage error (already printed, one line) or --help: its code, returned
        return usage.code if isinstance(usage.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"stock-pipelines {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        _release_embedded_redis()


def _release_embedded_redis() -> None:
    """What the command started on the user's behalf ends with it (unless another process uses it)."""
    redis_conn = sys.modules.get("stock_pipelines.redis_conn")  # a command that never used Redis: nothing
    if redis_conn is not None:
        redis_conn.release_embedded_redis()


if __name__ == "__main__":
    sys.exit(main())
