"""`stock-pipelines status`: one JSON document, the operator's one place to look.

Collectors (state, last heartbeat), breakers (state, failures), dormant mode and its reason, the
kill switches, the last recovery runs and what they recovered; with `REDIS_URL` unset, the
embedded Redis server (pid, socket, age, clients, who started it and when it stops). Exit 0 when automation is healthy,
1 when dormant or a breaker is not CLOSED or Redis is unreachable (the document says which).
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="print the automation's state as one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from stock_pipelines.ops import clock
    from stock_pipelines.ops.status import status_document
    from stock_pipelines.redis_conn import ENV_URL, describe_embedded, redis_client

    document = status_document(redis_client(), clock.now())
    if not os.environ.get(ENV_URL):
        document["embedded_redis"] = describe_embedded()
    print(json.dumps(document, indent=2, sort_keys=False))
    return 0 if document["ok"] else 1
