"""`stock-pipelines resume --reason "..."`: a person ends dormant mode.

Resets every broker circuit breaker that is not CLOSED (PERMANENT_OPEN included) and resumes
automatic recovery; both are recorded with who and why. Also offered as the Dagster job
`resume_automation_job`.
"""

from __future__ import annotations

import argparse
import getpass
import json

from stock_pipelines.commands import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "resume", help="leave dormant mode: reset the breakers, resume automatic recovery"
    )
    parser.add_argument("--reason", required=True, help="why it is safe to resume (recorded)")
    parser.add_argument("--by", help="who resumes (default: the login name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stock_pipelines.ops.governance import RecoveryGovernance
    from stock_pipelines.redis_conn import redis_client

    by = args.by or getpass.getuser()
    if not args.reason.strip():
        raise UsageError("--reason must say why it is safe to resume")
    try:
        result = RecoveryGovernance(redis_client()).resume(by, args.reason)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(result))
    return 0
