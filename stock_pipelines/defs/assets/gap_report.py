"""gap_report: every gap of a day, found from the heartbeats, the archive, the trades and the
broker's day volumes (`recovery.detect`)."""

from collections import Counter
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import redis

from stock_pipelines.defs.assets.day_inputs import collected, trading_day, universe
from stock_pipelines.defs.assets.day_volumes import broker_day_volumes
from stock_pipelines.defs.io_manager import LAKE, column_schema, lake_input
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import ArchiveResource, LakeResource, RedisResource
from stock_pipelines.defs.tables import frame_table
from stock_pipelines.defs.tags import RECOVERY, catalog
from stock_pipelines.gaps.summary import gaps_frame, minutes_lost
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.ops import clock
from stock_pipelines.quality.store import read_day_totals
from stock_pipelines.recovery.detect import collectors_of_day, detect_gaps, requested_gaps

MAX_LISTED = 25
TICK_COLUMNS = {"collector": pl.String, "symbol": pl.String, "qty": pl.Int64}


class GapReportConfig(dg.Config):
    """Set by the heartbeat sensor: who asked and for which windows. Every gap of the day is found
    again from the heartbeats and the archive; a requested window they do not cover yet (the
    outage is still young) is added as downtime (`recovery.detect.requested_gaps`)."""

    requested_by: str = ""
    requested_windows: list[str] = []


def heartbeat_store(
    context: dg.AssetExecutionContext, redis_resource: RedisResource
) -> HeartbeatStore | None:
    try:
        client = redis_resource.client()
        client.ping()
        return HeartbeatStore(client)
    except (redis.RedisError, OSError) as error:
        context.log.warning(f"Redis unreachable ({type(error).__name__}): using the archive's system streams")
        return None


def collectors(
    context: dg.AssetExecutionContext,
    day: date,
    ticks: pl.DataFrame,
    redis_resource: RedisResource,
    archive: ArchiveResource,
):
    store = heartbeat_store(context, redis_resource)
    return collectors_of_day(day, ticks, store, archive.config().archive_dir)


def _now_if_today(day: date) -> datetime | None:
    now = clock.now()  # STOCK_PIPELINES_FAKE_NOW in tests; the real clock otherwise
    return now if now.date() == day else None


def _reported_volumes(day: date, root: Path) -> dict[str, int]:
    """The broker's day volumes broker_day_volumes fetched for the day: trades after a symbol's
    last archived trade are a gap only they reveal."""
    totals = read_day_totals(day, root)
    return dict(totals.totals.iter_rows()) if totals is not None and totals.checked else {}


GAP_COLUMNS = {
    "kind": "downtime, silence or sequence",
    "start": "Asia/Seoul",
    "end": "Asia/Seoul",
    "symbols": "the symbols the gap lost",
}


@dg.asset(
    partitions_def=trading_day_partitions,
    ins={"raw_ticks": lake_input(missing_ok=True)},
    deps=[broker_day_volumes],
    group_name="recovery",
    description="Every gap of the day: collector downtime (heartbeats), silence (zombie collectors) and "
    "sequence gaps (cumulative-volume jumps, and trades after a symbol's last archived one that the "
    "broker's day volume reveals), clipped to trading time.",
    metadata={"dagster/column_schema": column_schema(gaps_frame([]).schema, GAP_COLUMNS)},
    io_manager_key=LAKE,
    **catalog(RECOVERY),
)
def gap_report(
    context: dg.AssetExecutionContext,
    config: GapReportConfig,
    raw_ticks: pl.LazyFrame | None,
    lake: LakeResource,
    redis: RedisResource,
    archive: ArchiveResource,
) -> dg.Output[pl.DataFrame]:
    day = trading_day(context)
    root = lake.root()
    ticks = collected(raw_ticks, TICK_COLUMNS)
    found = collectors(context, day, ticks, redis, archive)
    problems: Counter[str] = Counter()
    gaps = detect_gaps(day, ticks, found, universe=universe(day, ticks, root), now=_now_if_today(day),
                       archive_root=archive.config().archive_dir, problems=problems,
                       reported_volumes=_reported_volumes(day, root))
    for problem, count in problems.items():
        context.log.warning(f"gap evidence not readable: {count} x {problem}")
    if config.requested_windows:
        gaps = sorted(
            gaps + requested_gaps(config.requested_windows, config.requested_by, gaps, found),
            key=lambda g: (g.start, g.collector, g.kind.value),
        )
    frame = gaps_frame(gaps)
    lost = minutes_lost(gaps)
    symbols = sorted({s for g in gaps for s in g.symbols})
    history = {c.collector: c.history_source for c in found}
    listing = frame.head(MAX_LISTED).with_columns(
        pl.col("start", "end").dt.strftime("%H:%M:%S"), pl.col("symbols").list.len().alias("symbols")
    )
    return dg.Output(
        frame,
        metadata={
            "gaps": len(gaps),
            "symbols_affected": len(symbols),
            "minutes_lost": frame_table(lost, limit=lost.height),
            "gaps_table": frame_table(listing, limit=MAX_LISTED),
            "heartbeat_history_source": dg.MetadataValue.json(history),
            "collectors": len(found),
            "unreadable_evidence": dg.MetadataValue.json(dict(problems)),
            "requested_by": config.requested_by or "manual",
            "requested_windows": dg.MetadataValue.json(list(config.requested_windows)),
        },
    )

