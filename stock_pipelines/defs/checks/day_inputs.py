"""What the minute_bars checks and quality_report read for a partition: the day's lake inputs,
and whether the latest recovery of the day answered every gap window (from the instance), as the
day's measures (`quality.measures.DayMeasures`).

A run loads them once: the checks and the report of one run and partition share one
`DayMeasures`, so each measure is computed once per run. They run after every input they read
(`DAY_INPUTS`, the broker's stored figures), so what the first of them loaded is what the last
would. The runs of this project execute in one process (`defs/resources.py`'s in-process
executor); a step in another process loads its own.
"""

from datetime import date
from pathlib import Path

import dagster as dg

from stock_pipelines import lake
from stock_pipelines.quality.day import DayInputs, load_day
from stock_pipelines.quality.measures import DayMeasures

RECOVERED = dg.AssetKey("recovered_minute_bars")
GAP_REPORT = dg.AssetKey("gap_report")
# what `load_day` reads besides minute_bars: the checks run after them when a run makes them
DAY_INPUTS = [dg.AssetKey("raw_ticks"), GAP_REPORT, RECOVERED]


_latest: dict[tuple[str, str, Path], DayMeasures] = {}  # the last run's: one day's frames, not every day's


def inputs_for(partition_key: str, root: Path) -> DayInputs:
    try:
        return load_day(date.fromisoformat(partition_key), root)
    except lake.PartitionMissing as error:
        raise dg.Failure(f"{error}: materialize minute_bars[{partition_key}] first") from error


def measures_for(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext, root: Path
) -> DayMeasures:
    """The measures of the context's partition in its run, loaded from the lake at `root` by the
    first step of the run that asks."""
    key = (context.run.run_id, context.partition_key, root)
    measures = _latest.get(key)
    if measures is None:
        inputs = inputs_for(context.partition_key, root)
        complete = recovery_complete(context.instance, context.partition_key)
        _latest.clear()
        measures = _latest[key] = DayMeasures(
            inputs,
            recovery_complete=complete,
            data_dir=root,
            trades=lambda: lake.day_trades(root, inputs.day),  # archive + recovered trades
        )
    return measures


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition_key: str):
    """The newest materialization record of `key`'s partition, or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]), limit=1
    ).records
    return records[0] if records and records[0].asset_materialization is not None else None


def recovery_complete(instance: dg.DagsterInstance, partition_key: str) -> bool:
    """True when the latest recovered_minute_bars of the partition reported no unrecovered window
    and was made from the latest gap_report (a newer gap_report may hold gaps it never saw)."""
    recovered = latest_materialization(instance, RECOVERED, partition_key)
    if recovered is None:
        return False
    gaps = latest_materialization(instance, GAP_REPORT, partition_key)
    if gaps is not None and gaps.timestamp > recovered.timestamp:
        return False
    value = recovered.asset_materialization.metadata.get("windows_unrecovered")
    return value is not None and int(value.value) == 0
