"""collector_heartbeat_sensor: notices a dead or restarted collector and launches the recovery.

Thin: `ops.heartbeat_tick` gathers the inputs from Redis and `ops.heartbeat_rules` decides; this
turns the decision into run requests. The cursor (JSON) holds the event-stream position, each
collector's outage state and the windows waiting to launch, so a daemon restart misses nothing
and handles nothing twice (run keys dedupe as well). It is kept per Redis key prefix
(`ops.cursor_namespaces`): the demo's namespace never feeds the real one's evaluation.
"""

import json

import dagster as dg
from redis import RedisError

from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.defs.jobs.recovery import ATTEMPT_TAG, COLLECTOR_TAG, WINDOW_TAG, recovery_job
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.ops import clock
from stock_pipelines.ops.cursor_namespaces import cursor_for, with_cursor
from stock_pipelines.ops.heartbeat_rules import Launch
from stock_pipelines.ops.heartbeat_tick import heartbeat_tick
from stock_pipelines.redis_conn import key_prefix

SENSOR_NAME = "collector_heartbeat_sensor"
INTERVAL_S = 10  # project seconds between evaluations


def wall_interval_s(speed: float) -> int:
    """On an accelerated project clock (STOCK_PIPELINES_FAKE_NOW ...*speed): as often in project
    time as at 1x, at most once a wall second."""
    return clock.wall_interval_s(INTERVAL_S, speed)




def run_request(launch: Launch) -> dg.RunRequest:
    if launch.kind == "preflight":
        return dg.RunRequest(
            run_key=launch.run_key,
            job_name=preflight_job.name,
            tags={COLLECTOR_TAG: launch.collector, "stock_pipelines/reason": launch.reason[:200]},
        )
    window = launch.window
    assert window is not None
    spans = [f"{start.isoformat()}/{end.isoformat()}" for start, end in window.pieces]
    return dg.RunRequest(
        run_key=launch.run_key,
        job_name=recovery_job.name,
        partition_key=window.day.isoformat(),
        run_config={
            "ops": {
                "gap_report": {
                    "config": {
                        "requested_by": f"{SENSOR_NAME}:{launch.collector}",
                        "requested_windows": spans,
                    }
                }
            }
        },
        tags={
            COLLECTOR_TAG: window.collector,
            ATTEMPT_TAG: str(window.attempt),
            WINDOW_TAG: json.dumps(window.to_json(), separators=(",", ":")),
            "stock_pipelines/reason": launch.reason[:200],
        },
    )


@dg.sensor(
    name=SENSOR_NAME,
    jobs=[recovery_job, preflight_job],
    minimum_interval_seconds=wall_interval_s(clock.speed()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Collector heartbeats and restarts -> recovery runs for the lost trading time (and the "
    "pre-flight before the open), governed by kill switches, breakers, backoff and dormant mode.",
)
def collector_heartbeat_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, broker: BrokerResource
) -> dg.SensorResult:
    prefix = key_prefix()
    try:
        evaluation = heartbeat_tick(
            redis.client(), clock.now(), cursor_for(context.cursor, prefix), broker=broker.name()
        )
    except (RedisError, OSError) as error:
        # cursor untouched: the same events are read again once Redis answers
        return dg.SensorResult(skip_reason=f"Redis unreachable ({type(error).__name__}): nothing evaluated")
    for note in evaluation.notes:
        context.log.info(note)
    for warning in evaluation.warnings:
        context.log.warning(warning)
    requests = [run_request(launch) for launch in evaluation.launches]
    for launch in evaluation.launches:
        context.log.info(f"launching {launch.run_key}: {launch.reason}")
    return dg.SensorResult(
        run_requests=requests,
        cursor=with_cursor(context.cursor, prefix, evaluation.cursor),
        skip_reason=None if requests else evaluation.skip_reason,
    )
