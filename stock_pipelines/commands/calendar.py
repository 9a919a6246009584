"""`stock-pipelines calendar [DATE ...]`: one JSON object a line per date."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from stock_pipelines.commands import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calendar",
        help="print KRX trading-day facts for dates (default: today in Asia/Seoul)",
        description="Print, one JSON object a line, whether each DATE is a KRX trading day, "
        "its session's open and close (ISO 8601, +09:00) and the reason when closed or special; "
        "on stderr, how many days of supported calendar are left (a WARNING below 60).",
    )
    parser.add_argument("dates", nargs="*", metavar="DATE", help="YYYY-MM-DD (default: today)")
    parser.set_defaults(func=run)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date: expected YYYY-MM-DD, e.g. 2026-11-20") from None


def day_record(day: date) -> dict[str, object]:
    from stock_pipelines.market import CalendarRangeError, krx_calendar

    try:
        info = krx_calendar().day(day)
    except CalendarRangeError as error:
        raise UsageError(str(error)) from None
    session = info.session
    return {
        "date": day.isoformat(),
        "trading_day": info.is_trading_day,
        "open": session.open.isoformat() if session else None,
        "close": session.close.isoformat() if session else None,
        "reason": info.reason,
    }


def run(args: argparse.Namespace) -> int:
    from stock_pipelines.market import CalendarHorizon
    from stock_pipelines.ops import clock

    today = clock.now().date()
    days = [parse_day(text) for text in args.dates] or [today]
    for day in days:
        print(json.dumps(day_record(day), ensure_ascii=False))
    # stdout stays one record per date; how long the calendar lasts goes to the operator on stderr
    horizon = CalendarHorizon(today)
    print(("WARNING: " if horizon.running_out else "") + horizon.describe(), file=sys.stderr)
    return 0
