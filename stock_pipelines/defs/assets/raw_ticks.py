"""raw_ticks and raw_ticks_quarantine: one trading day of validated, deduplicated trades from every
collector's archive, and every line rejected on the way with its reason.

The work is `archive.ticks.DayIngest`, one pass for both tables; the lake IO manager writes
raw_ticks as its batches come (never whole in memory), then the quarantine the pass left.
"""

from datetime import date

import dagster as dg

from stock_pipelines.archive.ticks import QUARANTINE_SCHEMA, TICKS_SCHEMA, DayIngest, day_files
from stock_pipelines.defs.io_manager import LAKE, Batches, column_schema
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.defs.tags import TICKS, catalog
from stock_pipelines.market import krx_calendar

RAW_TICKS = dg.AssetKey("raw_ticks")
QUARANTINE = dg.AssetKey("raw_ticks_quarantine")


def session_for(partition_key: str):
    day = date.fromisoformat(partition_key)
    session = krx_calendar().session(day)
    if session is None:  # the partitions definition excludes closed days; a stale key is an error
        raise dg.Failure(f"{day} is not a KRX trading day; no partition exists for it")
    return day, session


@dg.multi_asset(
    partitions_def=trading_day_partitions,
    group_name="ticks",
    deps=["tick_archive"],
    outs={
        "raw_ticks": dg.AssetOut(
            key=RAW_TICKS,
            description="One KRX trading day of trades from every collector's JSONL archive: validated, "
            "deduplicated by (symbol, cum); every rejected line in raw_ticks_quarantine with its reason.",
            metadata={"dagster/column_schema": column_schema(TICKS_SCHEMA)},
            io_manager_key=LAKE,
            **catalog(TICKS),
        ),
        "raw_ticks_quarantine": dg.AssetOut(
            key=QUARANTINE,
            description="The archive lines raw_ticks rejected, each with its file, line and reason.",
            metadata={"dagster/column_schema": column_schema(QUARANTINE_SCHEMA)},
            io_manager_key=LAKE,
            **catalog(TICKS),
        ),
    },
)
def raw_ticks(context: dg.AssetExecutionContext, archive: ArchiveResource):
    day, session = session_for(context.partition_key)
    config = archive.config()
    run = DayIngest(day_files(config.roots(), day), session, config.session_tolerance)
    # streamed one range of rows at a time; the accounting is asserted before the rename
    batches = Batches(run.batches(), TICKS_SCHEMA, lambda: _metadata(run, session))
    yield dg.Output(batches, output_name="raw_ticks")
    assert run.quarantine is not None
    if run.stats.files == 0:
        context.log.warning(
            f"no archive files for {day} under {[str(r) for r, _ in config.roots()]}: empty partition"
        )
    yield dg.Output(run.quarantine, output_name="raw_ticks_quarantine")


def _metadata(run: DayIngest, session) -> dict:
    stats = run.stats
    share = stats.quarantined / stats.lines_in if stats.lines_in else 0.0
    return {
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
        "session_open": session.open.isoformat(),
        "session_close": session.close.isoformat(),
        "special_session": session.special_reason or "",
    }
