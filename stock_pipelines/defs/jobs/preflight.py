"""The pre-flight job: every check of `ops.preflight`, failing with the list of what is wrong
(and an alert to the webhook); a warning (the KRX calendar running out) is alerted too, and the
job still passes."""

import dagster as dg

from stock_pipelines import settings
from stock_pipelines.defs.broker_steps import BROKER_POOL
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, RedisResource
from stock_pipelines.ops.alerts import Alerter
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.preflight import run_preflight


def _dagster_storage(instance: dg.DagsterInstance):
    def probe() -> str:
        instance.get_runs_count()  # reads the run storage: SQLite file or PostgreSQL
        return f"{type(instance.run_storage).__name__} answers"

    return probe


def _redis_or_none(redis: RedisResource):
    try:
        return redis.client()
    except Exception:  # noqa: BLE001 - Redis itself may be what failed; alert without dedupe
        return None


@dg.op(
    pool=BROKER_POOL,  # issues (or reuses) the broker's access token
    description="Broker credentials and token, Redis, Dagster storage, archive writable, free disk, sources, "
    "KRX calendar horizon."
)
def preflight_checks(
    context: dg.OpExecutionContext, redis: RedisResource, archive: ArchiveResource, broker: BrokerResource
) -> dict:
    def ping():
        return redis.client().ping()

    broker_name = broker.name()
    report = run_preflight(
        broker=broker_name,
        archive_dir=archive.config().archive_dir,
        token_dir=broker.tokens(),
        redis_ping=ping,
        dagster_storage=_dagster_storage(context.instance),
        # the pre-flight checks the deployment itself: are its variables set?
        environ=settings.environment(),
    )
    for result in report.results:
        (context.log.info if result.ok else context.log.error)(f"{result.name}: {result.detail}")
    client = _redis_or_none(redis) if report.warnings or not report.ok else None
    for number, warning in enumerate(report.warnings):
        context.log.warning(warning)
        Alerter(client).send("preflight_warning", warning, dedupe_key=f"{context.run_id}:{number}")
    if not report.ok:
        missing_key = next((r for r in report.failures if r.name.endswith(" credentials")), None)
        if missing_key is not None and client is not None:
            # a missing API key cannot heal by itself: the breaker opens for good (and the
            # heartbeat sensor goes dormant) until a person resets it with `resume`
            breaker = RecoveryGovernance(client, broker_name).breaker()
            breaker.trip_permanently(f"pre-flight: {missing_key.detail}")
        Alerter(client).send("preflight_failed", report.describe(), dedupe_key=f"{context.run_id}")
        raise dg.Failure(report.describe(), metadata={"report": dg.MetadataValue.json(report.to_json())})
    context.add_output_metadata({"report": dg.MetadataValue.json(report.to_json())})
    return report.to_json()


@dg.job(
    description="Pre-flight: is everything the trading day needs in place? Fails with a clear list.",
    tags={"stock_pipelines/run_kind": "preflight"},
)
def preflight_job() -> None:
    preflight_checks()
