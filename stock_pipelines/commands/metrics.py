"""`stock-pipelines metrics serve`: the automation's state for Prometheus (docs/operations.md, "Metrics")."""

from __future__ import annotations

import argparse
import os
import sys

from stock_pipelines.commands import UsageError
from stock_pipelines.commands.arguments import tcp_port

DEFAULT_PORT = 9464


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("metrics", help="serve the automation's state as Prometheus metrics")
    sub = parser.add_subparsers(dest="metrics_command", required=True, metavar="SUBCOMMAND")
    serve = sub.add_parser(
        "serve", help="serve /metrics and /health until SIGTERM",
        description="Export breakers, dormant mode, kill switches, the collectors' heartbeats, recovery runs "
        "by outcome and the newest day's completeness and certification on /metrics (Prometheus text "
        "format); /health answers 503 with the reason while Redis or the Dagster instance cannot be read.",
    )
    serve.add_argument("--port", type=tcp_port,
                       default=os.environ.get("STOCK_PIPELINES_METRICS_PORT", str(DEFAULT_PORT)),
                       help=f"port (0: any free one; $STOCK_PIPELINES_METRICS_PORT, default {DEFAULT_PORT})")
    serve.add_argument("--host", default=os.environ.get("STOCK_PIPELINES_METRICS_HOST", "127.0.0.1"),
                       help="address to bind (default $STOCK_PIPELINES_METRICS_HOST or 127.0.0.1)")
    serve.add_argument("--no-instance", action="store_true",
                       help="leave out the recovery runs (no Dagster instance: DAGSTER_HOME unset)")
    serve.set_defaults(func=serve_metrics)


def recovery_run_counts(instance):
    """Recovery runs in `instance` by Dagster run status, counted at every call."""
    import dagster as dg

    from stock_pipelines.defs.jobs.recovery import recovery_job

    def counts() -> dict[str, int]:
        return {status.value: instance.get_runs_count(dg.RunsFilter(job_name=recovery_job.name,
                                                                     statuses=[status]))
                for status in dg.DagsterRunStatus}

    return counts


def serve_metrics(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from prometheus_client import CollectorRegistry

    from stock_pipelines.metrics_server import MetricsServer
    from stock_pipelines.ops import clock
    from stock_pipelines.ops.metrics_export import OperationsMetrics, redis_problem
    from stock_pipelines.redis_conn import redis_client

    run_counts = None
    if not args.no_instance:
        if not os.environ.get("DAGSTER_HOME"):
            raise UsageError("DAGSTER_HOME is not set: the recovery runs are read from the Dagster instance "
                             "(set it, or pass --no-instance)")
        import dagster as dg

        run_counts = recovery_run_counts(dg.DagsterInstance.get())
    client = redis_client()
    exporter = OperationsMetrics(client, clock.now, run_counts)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    problem = redis_problem(client)
    if problem:
        print(f"stock-pipelines metrics: {problem}; /health answers 503 until it is back", file=sys.stderr)
    try:
        server = MetricsServer(registry, exporter.problems, args.host, args.port).start()
    except OSError as error:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {error}") from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    started = {"metrics": f"http://{args.host}:{server.port}/metrics", "pid": os.getpid()}
    print(json.dumps(started), flush=True)
    try:
        stop.wait()
    finally:
        server.close()
    return 0
