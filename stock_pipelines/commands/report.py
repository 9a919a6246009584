"""`stock-pipelines report DATE`: print a day's quality summary and the path of its HTML report."""

from __future__ import annotations

import argparse

from stock_pipelines.commands import UsageError
from stock_pipelines.commands.calendar import parse_day


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print a trading day's data-quality summary and the path of its HTML report",
        description="Print the quality summary the quality_report asset wrote for DATE (completeness, "
        "checks, symbols with holes, disagreements) and the path of the HTML report. With --build, "
        "assess the day from the lake now and write the report (for a day no run has reported on, "
        "e.g. one a blocking check stopped); the broker sample is the one the check stored, if any.",
    )
    parser.add_argument("date", metavar="DATE", help="YYYY-MM-DD (a KRX trading day)")
    parser.add_argument(
        "--build", action="store_true", help="assess the day from the lake and write the report now"
    )
    parser.set_defaults(func=run)


def summary_lines(summary: dict, html_path: str) -> list[str]:
    status = "CERTIFIED" if summary["certified"] else "NOT CERTIFIED"
    failed = [name for name, ok in summary["checks"].items() if not ok]
    lines = [
        f"{summary['date']}: {status}",
        (
            f"completeness {summary['completeness'] * 100:.3f}% ({summary['present']}/{summary['expected']} expected "
            f"symbol-minutes, {summary['missing']} missing; ERROR below {summary['error_share'] * 100:.2f}%, "
            f"WARN below {summary['warn_share'] * 100:.2f}%)"
        ),
        "failed checks: " + (", ".join(failed) if failed else "none"),
    ]
    for row in summary["by_collector"]:
        lines.append(
            f"  {row['collector']}: {row['share'] * 100:.3f}% ({row['present']}/{row['expected']}, "
            f"{row['symbols']} symbols)"
        )
    holes = summary["symbols_with_holes"]
    lines.append(
        f"symbols with holes: {len(holes)}"
        + (f" ({', '.join(holes[:20])}{' …' if len(holes) > 20 else ''})" if holes else "")
    )
    lines.append(
        f"closing prints missing: {len(summary['closing_missing'])}; bars outside trading time: "
        f"{summary['outside_trading_time']}; OHLC violations: {summary['ohlc_violations']}; "
        f"day-volume disagreements: {summary['volume_disagreements']}"
    )
    lines.append(f"broker sample: {summary['broker_note']}; disagreements: {summary['broker_disagreements']}")
    if "day_totals_note" in summary:  # reports written before the day-volume cross-check lack it
        lines.append(f"broker day volumes: {summary['day_totals_note']}")
    if "trade_level" in summary:  # reports written before trade completeness lack it
        lines.extend(trade_level_lines(summary["trade_level"]))
    lines.append(f"html: {html_path}")
    return lines


def trade_level_lines(trade_level: dict) -> list[str]:
    """The day complete at trade level or not, and the symbols left at bar level with their share."""
    left = trade_level["bar_level_symbols"]
    named = ", ".join(
        f"{symbol} {'unknown' if share is None else f'{share * 100:.4f}%'}"
        for symbol, share in list(left.items())[:20]
    )
    more = " …" if len(left) > 20 else ""
    return [
        f"trade level: {trade_level['verdict']}",
        f"symbols left at bar level: {len(left)}" + (f" ({named}{more})" if left else ""),
    ]


def run(args: argparse.Namespace) -> int:
    from stock_pipelines import lake
    from stock_pipelines.market import CalendarRangeError, krx_calendar
    from stock_pipelines.quality.store import read_summary, report_dir

    day = parse_day(args.date)
    try:
        trading = krx_calendar().is_trading_day(day)
    except CalendarRangeError as error:
        raise UsageError(str(error)) from None
    if not trading:
        raise UsageError(f"{day} is not a KRX trading day: no report exists for it")
    if args.build:
        from stock_pipelines.quality.build import build_report
        from stock_pipelines.quality.config import QualityConfig
        from stock_pipelines.quality.day import load_day
        from stock_pipelines.quality.measures import DayMeasures
        from stock_pipelines.settings import environment

        try:
            inputs = load_day(day)
        except lake.PartitionMissing:
            raise UsageError(f"minute_bars[{day}] is not in the lake: materialize it first") from None
        # Outside a run the recovery's own verdict is unknown: unanswered gap minutes count as expected.
        build_report(DayMeasures(inputs, recovery_complete=False), QualityConfig.from_env(environment()))
    summary = read_summary(day)
    if summary is None:
        raise UsageError(f"no quality report for {day}: materialize quality_report[{day}] or pass --build")
    print("\n".join(summary_lines(summary, str(report_dir(day) / "report.html"))))
    return 0
