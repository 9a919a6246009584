"""`stock-pipelines demo`: the main job on the embedded default.

For now it shows what exists end to end: today's session from the calendar, the trading-day
partitions, and a real materialization of the latest trading day's raw_ticks partition in the
Dagster instance of DAGSTER_HOME (or a temporary one). Later issues grow it into the full
simulate -> detect -> recover -> certify demo.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on the embedded default")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    from stock_pipelines.commands.calendar import day_record
    from stock_pipelines.defs.assets.raw_ticks import raw_ticks
    from stock_pipelines.defs.partitions import trading_day_partitions
    from stock_pipelines.market import SEOUL

    now = datetime.now(SEOUL)
    print("today:", json.dumps(day_record(now.date()), ensure_ascii=False))
    keys = trading_day_partitions.get_partition_keys(current_time=now)
    print(f"trading-day partitions: {len(keys)} ({keys[0]} .. {keys[-1]})")

    # The last key can be the next session (end_offset=1 keeps today's open partition visible);
    # the demo materializes the latest session that has started.
    latest = max(key for key in keys if key <= now.date().isoformat())
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([raw_ticks], partition_key=latest, instance=instance)
    materialization = result.asset_materializations_for_node("raw_ticks")[0]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    print(f"materialized raw_ticks[{latest}]: {json.dumps(metadata, ensure_ascii=False)}")
    return 0 if result.success else 1
