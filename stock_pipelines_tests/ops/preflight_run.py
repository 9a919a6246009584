"""The pre-flight job run in process with everything it checks bound as resources: this test's
Redis, data and archive directories, broker, alert webhook and headroom thresholds (the test
machine is shared: its load and free memory are not the pre-flight's finding)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.defs.resources import (
    ArchiveResource,
    BrokerResource,
    LakeResource,
    PreflightResource,
    RedisResource,
)
from stock_pipelines_tests.dagster_resources import resources


def preflight_resources(redis_url: str, root: Path, webhook_url: str, **broker: str) -> dict:
    """`broker`: the BrokerResource's fields (broker, base_url, app_key, app_secret)."""
    bound_broker = BrokerResource(token_dir=str(root / "tokens"), **broker)
    return resources(
        redis=RedisResource(url=redis_url),
        lake=LakeResource(data_dir=str(root / "data")),
        archive=ArchiveResource(archive_dir=str(root / "archive")),
        broker=bound_broker,
        alerts=AlertResource(broker=bound_broker, webhook_url=webhook_url),
        preflight=PreflightResource(max_load_per_cpu=1000, min_available_memory_mb=1),
    )


def run_preflight_job(instance: dg.DagsterInstance, bound: dict) -> dg.ExecuteInProcessResult:
    return preflight_job.execute_in_process(instance=instance, raise_on_error=False, resources=bound)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return result.failure_data_for_node("preflight_checks").error.message
