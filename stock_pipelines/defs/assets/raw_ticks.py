"""raw_ticks: one trading day of validated, deduplicated trades from every collector's archive.

The work is `archive.ticks.ingest_day`; this asset writes its two outputs to the lake
(raw_ticks and raw_ticks_quarantine, each atomically) and reports the line accounting.
"""

from datetime import date

import dagster as dg

from stock_pipelines import lake
from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.archive.ticks import TICKS_SCHEMA, DayIngest, day_files
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.market import krx_calendar

QUARANTINE_ASSET = "raw_ticks_quarantine"


def session_for(partition_key: str):
    day = date.fromisoformat(partition_key)
    session = krx_calendar().session(day)
    if session is None:  # the partitions definition excludes closed days; a stale key is an error
        raise dg.Failure(f"{day} is not a KRX trading day; no partition exists for it")
    return day, session


@dg.asset(
    partitions_def=trading_day_partitions,
    group_name="ticks",
    description="One KRX trading day of trades from every collector's JSONL archive: validated, "
    "deduplicated by (symbol, cum); every rejected line in raw_ticks_quarantine with its reason.",
)
def raw_ticks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    day, session = session_for(context.partition_key)
    config = ArchiveConfig.from_env()
    run = DayIngest(day_files(config.roots(), day), session, config.session_tolerance)
    # streamed one symbol range at a time; the accounting is asserted before the rename
    path, _ = lake.write_partition_batches(run.batches(), TICKS_SCHEMA, "raw_ticks", day)
    assert run.quarantine is not None
    quarantine_path = lake.write_partition(run.quarantine, QUARANTINE_ASSET, day)
    stats = run.stats
    if stats.files == 0:
        context.log.warning(
            f"no archive files for {day} under {[str(r) for r, _ in config.roots()]}: empty partition"
        )
    share = stats.quarantined / stats.lines_in if stats.lines_in else 0.0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.rows_kept,
            "files": stats.files,
            "bytes": stats.bytes,
            "lines_in": stats.lines_in,
            "rows_kept": stats.rows_kept,
            "duplicates": stats.duplicates,
            "duplicates_same_source": stats.duplicates_same_source,
            "duplicates_cross_source": stats.duplicates_cross_source,
            "duplicate_conflicts": stats.duplicate_conflicts,
            "quarantined": stats.quarantined,
            "quarantine_share": share,
            "quarantined_by_reason": dg.MetadataValue.json(stats.quarantined_by_reason),
            "accounting": f"{stats.lines_in} lines = {stats.rows_kept} kept + {stats.duplicates} "
            f"duplicates + {stats.quarantined} quarantined",
            "empty_partition": stats.files == 0,
            "path": dg.MetadataValue.path(str(path)),
            "quarantine_path": dg.MetadataValue.path(str(quarantine_path)),
            "session_open": session.open.isoformat(),
            "session_close": session.close.isoformat(),
            "special_session": session.special_reason or "",
        }
    )
