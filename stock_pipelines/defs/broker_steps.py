"""What every step that calls a broker shares: its concurrency pool, the run-time question
"may this run call the broker now?" (`ops.automation`), and the gated client it calls.

A run is automatic when Dagster launched it for a schedule, a sensor or an automation condition
(the tags Dagster puts on such runs), including the daemon's automatic retries of such a run
(they keep the parent's tags and add `dagster/retry_number`). A re-execution a person starts
from the UI copies the parent's tags too, but it carries `dagster/parent_run_id` without a retry
number: a person launched it.
"""

from collections.abc import Mapping

import dagster as dg
import redis

from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.ops.automation import BrokerPermit, broker_permit
from stock_pipelines.recovery.gated_source import gated

# Ops that call a broker's REST API share this pool; the instance's `concurrency.pools.default_limit`
# (dagster_home/dagster.yaml, docker/dagster.yaml, docker/scale-out/dagster.yaml) sizes it.
BROKER_POOL = "broker_api"

AUTOMATIC_TAGS = {
    "dagster/schedule_name": "schedule",
    "dagster/sensor_name": "sensor",
    "dagster/from_automation_condition": "automation condition",
    "dagster/auto_materialize": "auto-materialize",
}
PARENT_RUN_TAG = "dagster/parent_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"


def launched_by(tags: Mapping[str, str]) -> str | None:
    """The schedule or sensor that launched a run with these tags; None when a person did."""
    if PARENT_RUN_TAG in tags and RETRY_NUMBER_TAG not in tags:
        return None
    for tag, kind in AUTOMATIC_TAGS.items():
        if tag in tags:
            return f"{kind} {tags[tag]}" if tags[tag] not in ("", "true") else kind
    return None


def permit(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, redis_resource: RedisResource
) -> BrokerPermit:
    """Ask, and say in the run's log what was decided when automation is off."""
    try:
        client: redis.Redis | None = redis_resource.client()
    except (redis.RedisError, OSError, ValueError):
        client = None
    decision = broker_permit(client, launched_by(context.run.tags))
    if decision.automation_off:
        context.log.warning(decision.describe())
    return decision


def broker_source(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    broker: BrokerResource,
    redis_resource: RedisResource,
):
    """(source, why-not): the broker client the recovery uses, under the same shared rate limit and
    behind the broker's circuit breaker; none for an automatic run while automation is off."""
    decision = permit(context, redis_resource)
    if not decision.allowed:
        return None, decision.describe()
    try:
        client = redis_resource.client()
        client.ping()
        source, gate = broker.source(client)
        return gated(source, gate), ""
    except (BrokerError, ValueError, redis.RedisError, OSError) as error:
        return None, f"{type(error).__name__}: {error}"
