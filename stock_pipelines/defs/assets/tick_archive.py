"""tick_archive: the JSONL archive itself, as an observed (external) daily-partitioned asset.

A sensor observes today's partition every two minutes: per collector and stream, files, bytes,
lines and last write time (an AssetObservation on the partition). Whenever the freshness verdict
changes (the first observation of a day, a collector going quiet or coming back) it launches a
run of the `tick_archive_fresh` check on that partition, so "logs not written" turns red in the
UI within minutes of a collector going quiet in continuous trading. The check can also be run by
hand on any partition.

Why a run and not a runless check evaluation in the SensorResult: Dagster stores runless
evaluations with run_id "" under a unique (check, run_id, partition) index, so a second one for
the same partition fails the sensor tick. A run has its own run_id and is cheap (one check).
"""

import json
from datetime import date, datetime

import dagster as dg

from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.archive.observe import collectors_with_trades, freshness, observe_day
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.defs.tags import TICKS, catalog
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops import clock

TICK_ARCHIVE = dg.AssetKey("tick_archive")
FRESH_CHECK = "tick_archive_fresh"
FRESH_CHECK_KEY = dg.AssetCheckKey(TICK_ARCHIVE, FRESH_CHECK)
VERDICT_TAG = "stock_pipelines/freshness_verdict"
PARTITION_TAG = "dagster/partition"

tick_archive = dg.AssetSpec(
    TICK_ARCHIVE,
    partitions_def=trading_day_partitions,
    group_name="ticks",
    description="The collectors' JSONL archive (observed, not materialized): per collector and "
    "stream, files, bytes, lines and last write time.",
    **catalog(TICKS, "json"),
)


def _observe(day: date, now: datetime, cursor: dict | None, config: ArchiveConfig):
    roots = config.roots()
    stats, new_cursor = observe_day(roots, day, cursor)
    calendar = krx_calendar()
    previous = calendar.previous_trading_day(day)
    expected = collectors_with_trades(roots, previous) if previous else set()
    verdict = freshness(stats, now, calendar, config.freshness_max_silence, expected)
    per_stream = {f"{s.collector}/{s.stream}": s.as_metadata() for s in stats}
    metadata = {
        "files": sum(s.files for s in stats),
        "bytes": sum(s.bytes for s in stats),
        "trade_lines": sum(s.lines for s in stats if s.stream == "trades"),
        "collectors": len({s.collector for s in stats}),
        "last_write": max((s.last_write for s in stats if s.last_write), default=None),
        "streams": dg.MetadataValue.json(per_stream),
    }
    metadata["last_write"] = metadata["last_write"].isoformat() if metadata["last_write"] else ""
    check_metadata = {
        "stale_collectors": dg.MetadataValue.json(
            {c: (None if s == float("inf") else round(s, 1)) for c, s in verdict.stale.items()}
        ),
        "max_silence_s": config.freshness_max_silence.total_seconds(),
        "observed_at": now.isoformat(),
    }
    return metadata, verdict, check_metadata, new_cursor


def evaluate_tick_archive(
    now: datetime, cursor_text: str | None, config: ArchiveConfig
) -> dg.SensorResult | dg.SkipReason:
    """One observation of today's partition at `now` and the freshness check's evaluation of it.

    The evaluation is for callers that judge freshness themselves (the incident sensor); the
    tick_archive sensor records it through a check run instead (`record_verdict_changes`)."""
    day = now.astimezone(SEOUL).date()
    if not krx_calendar().is_trading_day(day):
        return dg.SkipReason(f"{day} is not a KRX trading day")
    cursor = json.loads(cursor_text) if cursor_text else {}
    files_cursor = cursor.get("files") if cursor.get("day") == day.isoformat() else None
    metadata, verdict, check_metadata, new_cursor = _observe(day, now, files_cursor, config)
    key = day.isoformat()
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(asset_key=TICK_ARCHIVE, partition=key, metadata=metadata),
            dg.AssetCheckEvaluation(
                asset_key=TICK_ARCHIVE,
                check_name=FRESH_CHECK,
                passed=verdict.passed,
                partition=key,
                severity=dg.AssetCheckSeverity.ERROR,
                description=verdict.description,
                metadata=check_metadata,
            ),
        ],
        cursor=json.dumps({"day": key, "files": new_cursor}),
    )


def record_verdict_changes(result: dg.SensorResult, previous_cursor: str | None) -> dg.SensorResult:
    """`result` with its check evaluation replaced by a run of the check when the verdict (passed,
    and which collectors are stale) differs from the last one recorded today, per the cursor."""
    (observation,) = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    (evaluation,) = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    cursor = json.loads(result.cursor)
    previous = json.loads(previous_cursor) if previous_cursor else {}
    verdict = [evaluation.passed, sorted(evaluation.metadata["stale_collectors"].value)]
    run_requests = []
    if previous.get("day") != cursor["day"] or previous.get("verdict") != verdict:
        # the partition as a run tag, not partition_key: Dagster 1.13 gives a job of checks alone
        # no partitions definition (not even define_asset_job's), so a partition_key fails to resolve
        run_requests.append(dg.RunRequest(
            tags={PARTITION_TAG: evaluation.partition, VERDICT_TAG: "passed" if evaluation.passed else "failed"},
        ))
    return dg.SensorResult(
        asset_events=[observation],
        run_requests=run_requests,
        cursor=json.dumps({**cursor, "verdict": verdict}),
    )


tick_archive_fresh_job = dg.define_asset_job(
    "tick_archive_fresh_job",
    selection=dg.AssetSelection.checks(FRESH_CHECK_KEY),
    description="Run the tick_archive_fresh check on one partition (launched by tick_archive_sensor).",
)


@dg.sensor(
    minimum_interval_seconds=120,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=tick_archive_fresh_job,
    description="Observe today's tick_archive partition; run its freshness check when the verdict changes.",
)
def tick_archive_sensor(context: dg.SensorEvaluationContext, archive: ArchiveResource):
    result = evaluate_tick_archive(clock.now(), context.cursor, archive.config())
    if isinstance(result, dg.SkipReason):
        return result
    return record_verdict_changes(result, context.cursor)


@dg.asset_check(
    asset=TICK_ARCHIVE,
    partitions_def=trading_day_partitions,
    name=FRESH_CHECK,
    description="In continuous trading every collector's trade files grew within "
    "STOCK_PIPELINES_ARCHIVE_MAX_SILENCE_S (default 120 s).",
)
def tick_archive_fresh(
    context: dg.AssetCheckExecutionContext, archive: ArchiveResource
) -> dg.AssetCheckResult:
    day = date.fromisoformat(context.partition_key)
    now = clock.now()
    if day != now.astimezone(SEOUL).date():
        return dg.AssetCheckResult(
            passed=True, description=f"{day} is not today: its files can no longer go stale"
        )
    _, verdict, check_metadata, _ = _observe(day, now, None, archive.config())
    return dg.AssetCheckResult(
        passed=verdict.passed, description=verdict.description, metadata=check_metadata
    )
