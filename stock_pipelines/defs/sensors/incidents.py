"""incident_sensor: opens and resolves incidents and delivers their alerts, every 30 s of
project time (on an accelerated clock at most every 2 wall seconds).

Thin: `ops.incident_tick` reads the sources in Redis and drives the alerts; this adds the
archive's freshness, judged by the `tick_archive_fresh` check's own evaluation
(`evaluate_tick_archive`, its file cursor kept in this sensor's cursor), and the webhook from the
`alerts` resource. Incident state is in Redis, so several daemons evaluating together still
alert once per incident. The cursor (JSON) holds the archive's file cursor and, under
"incidents", the open incidents as last seen: Redis coming back empty does not lose them.
"""

import json

import dagster as dg
from redis import RedisError

from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.assets.tick_archive import evaluate_tick_archive
from stock_pipelines.defs.resources import ArchiveResource, RedisResource
from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock
from stock_pipelines.ops.incident_tick import incident_tick
from stock_pipelines.ops.incidents import Observation, freshness_observation

SENSOR_NAME = "incident_sensor"
INTERVAL_S = 30  # project seconds between evaluations
# On an accelerated clock no more often than this: each evaluation also reads the archive's new
# lines, and the heartbeat sensor already takes a wall second's share of the daemon.
FASTEST_WALL_S = 2


def wall_interval_s(speed: float) -> int:
    return clock.wall_interval_s(INTERVAL_S, speed, at_least_s=FASTEST_WALL_S)


def archive_freshness(now, cursor: str | None, config: ArchiveConfig) -> tuple[list[Observation], str | None]:
    """The freshness verdict at `now` and the file cursor to keep; on a day without trading the
    archive cannot be stale; an unreadable archive is not observed (its incident stays as is)."""
    day = now.astimezone(SEOUL).date().isoformat()
    try:
        result = evaluate_tick_archive(now, cursor, config)
    except OSError:
        return [], cursor
    if not isinstance(result, dg.SensorResult):
        return [freshness_observation(True, "", day)], cursor
    (evaluation,) = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    return [freshness_observation(evaluation.passed, evaluation.description or "", day)], result.cursor


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=wall_interval_s(clock.speed()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Incidents (collector down/stalled, disk low, archive stale, breaker open, dormant, "
    "pre-flight failed) -> one webhook alert when each opens and one when it resolves.",
)
def incident_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, alerts: AlertResource, archive: ArchiveResource
) -> dg.SensorResult:
    now = clock.now()
    state = json.loads(context.cursor) if context.cursor else {}
    remembered = state.pop("incidents", None)
    freshness, files = archive_freshness(now, json.dumps(state) if state else None, archive.config())
    try:
        result = incident_tick(redis.client(), alerts.sender(), now, freshness, alerts.secrets(), remembered)
    except (RedisError, OSError) as error:
        return dg.SensorResult(
            skip_reason=f"Redis unreachable ({type(error).__name__}): incidents not evaluated",
            cursor=_cursor(files, remembered),
        )
    for kind, subject in result.adopted:
        context.log.warning(f"incident adopted again after Redis lost it: {kind} {subject}")
    for kind, subject in result.opened:
        context.log.warning(f"incident opened: {kind} {subject}")
    for kind, subject in result.resolved:
        context.log.info(f"incident resolved: {kind} {subject}")
    for alert_id, why in result.delivery.failed.items():
        context.log.warning(f"alert {alert_id} not delivered ({why}): retried with backoff")
    return dg.SensorResult(skip_reason=result.describe(), cursor=_cursor(files, result.remembered))


def _cursor(files: str | None, remembered: dict | None) -> str:
    state = json.loads(files) if files else {}
    if remembered:
        state["incidents"] = remembered
    return json.dumps(state)
