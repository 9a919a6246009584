"""`stock-pipelines fleet run|status`: the supervised collector fleet (docs/fleet.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stock_pipelines.commands import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fleet",
                                   help="run the collectors a fleet file describes, or show their status")
    sub = parser.add_subparsers(dest="fleet_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run", help="start and supervise the collectors of a fleet file",
        description="Start each collector of FLEET.yaml as a `collector run` child, restart one that exits "
        "(exponential backoff, full jitter; a failed self-diagnosis only slowly), follow the "
        "FEATURE_COLLECTORS_ENABLED kill switch and dormant mode, and stop every child gracefully on "
        "SIGTERM/SIGINT. One JSON line per event on stdout; the children's output on stderr.",
    )
    run.add_argument("--config", required=True, type=Path, metavar="FLEET.yaml", help="the fleet file")
    run.set_defaults(func=run_fleet)
    status = sub.add_parser(
        "status", help="print the fleet's state as one JSON document",
        description="Each collector's pid, state (pending/running/backoff/failed/disabled/stopping/stopped), "
        "restarts, last exit and reason, next restart, metrics URL (its fleet file metrics_port), and its "
        "heartbeat age from Redis when reachable.",
    )
    status.add_argument("--config", type=Path, metavar="FLEET.yaml",
                        help="the fleet file (default: the status file under the data dir)")
    status.add_argument("--check", action="store_true",
                        help="exit 1 when a collector has failed or the supervisor is not running "
                        "(healthcheck)")
    status.set_defaults(func=show_status)


def _load(path: Path):
    from stock_pipelines.fleet.config import FleetConfigError, load_fleet_config
    from stock_pipelines.settings import Settings

    try:
        return load_fleet_config(path, Settings.from_env().data_dir)
    except FleetConfigError as error:
        raise UsageError(f"invalid fleet file\n{error}") from None


def run_fleet(args: argparse.Namespace) -> int:
    import signal

    from stock_pipelines.fleet.config import missing_environment
    from stock_pipelines.fleet.gate import FleetGate
    from stock_pipelines.fleet.launch import collector_argv, collector_environment
    from stock_pipelines.fleet.policy import RestartPolicy
    from stock_pipelines.fleet.supervisor import Member, Supervisor
    from stock_pipelines.redis_conn import embedded_redis_url, redis_client
    from stock_pipelines.resilience.backoff import Backoff

    config = _load(args.config)
    spec = config.spec
    for problem in missing_environment(config, os.environ):
        print(f"fleet: {problem} (its self-diagnosis will fail)", file=sys.stderr)
    redis_url = os.environ.get(spec.redis_url_env) or embedded_redis_url()
    members = [Member(c.id, c.source, len(config.symbols[c.id]), collector_argv(config, c),
                      collector_environment(config, c, os.environ, redis_url), metrics_url=config.metrics_url(c))
               for c in config.collectors]
    policy = RestartPolicy(
        restart=Backoff(spec.restart_backoff.base_s, spec.restart_backoff.cap_s),
        diagnosis=Backoff(spec.diagnosis_retry.base_s, spec.diagnosis_retry.cap_s),
        stable_after_s=spec.stable_after_s,
    )
    supervisor = Supervisor(members, policy, FleetGate(lambda: redis_client(redis_url)), config.status_file,
                            events=sys.stdout, child_log=sys.stderr, stop_timeout_s=spec.stop_timeout_s,
                            switch_poll_s=spec.switch_poll_s)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: supervisor.request_stop(received))
    return supervisor.run()


def show_status(args: argparse.Namespace) -> int:
    import time

    from stock_pipelines.fleet.status import FleetStatusError, health_problems, read_status
    from stock_pipelines.settings import Settings

    if args.config is not None:
        config = _load(args.config)
        path, url_env = config.status_file, config.spec.redis_url_env
    else:
        path, url_env = Settings.from_env().data_dir / "fleet" / "status.json", "REDIS_URL"
    try:
        document = read_status(path)
    except FleetStatusError as error:
        print(f"stock-pipelines fleet status: {error}", file=sys.stderr)
        return 1
    _add_heartbeats(document, os.environ.get(url_env))
    problems = health_problems(document, time.time())
    document["healthy"], document["problems"] = not problems, problems
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 1 if args.check and problems else 0


def _add_heartbeats(document: dict, url: str | None) -> None:
    """Each collector's heartbeat age (project clock) from Redis; never starts a Redis for it."""
    import redis

    from stock_pipelines import embedded_redis
    from stock_pipelines.heartbeat import HeartbeatStore

    if not url:
        url = embedded_redis.url_of(embedded_redis.socket_path(embedded_redis.server_dir()))
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
    try:
        ages = HeartbeatStore(client).collectors()
        document["redis"] = "ok"
    except (redis.RedisError, OSError) as error:
        ages, document["redis"] = None, f"unreachable: {type(error).__name__}"
    finally:
        client.close()
    for collector_id, collector in document["collectors"].items():
        age = None if ages is None else ages.get(collector_id)
        collector["heartbeat_age_s"] = None if age is None else round(age, 1)
