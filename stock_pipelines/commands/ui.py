"""`stock-pipelines ui`: the Dagster UI (`dagster dev`: webserver + daemon) on this project's setup.

Same defaults as `stock-pipelines demo` and `./run ui`: DAGSTER_HOME is the repository's
`dagster_home/` unless set, the data and Redis come from the same environment variables, so the
demo's runs, the sensors and the schedules are what the UI shows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from stock_pipelines.commands.arguments import listen_port

    parser = subparsers.add_parser("ui", help="open the Dagster UI (dagster dev) on this setup")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=listen_port, default=3000)
    parser.set_defaults(func=run)


def command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ}
    env.setdefault("DAGSTER_HOME", str(REPO_ROOT / "dagster_home"))
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [
        dagster,
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ], env


def run(args: argparse.Namespace) -> int:
    argv, env = command(args)
    os.chdir(REPO_ROOT)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached
