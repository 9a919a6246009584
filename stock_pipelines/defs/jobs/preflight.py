"""The pre-flight job: every check of `ops.preflight`, failing with the list of what is wrong.

Its outcome is recorded in Redis and opens (or, when it passes, resolves) the `preflight_failed`
incident at once, with its alert delivered from here; the incident sensor retries a delivery
that failed. A warning (the KRX calendar running out) is a one-off notice per run, and the job
still passes."""

import dagster as dg
from redis import RedisError

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.broker_steps import BROKER_POOL
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, PreflightResource, RedisResource
from stock_pipelines.ops import clock
from stock_pipelines.ops.alert_outbox import drain
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.ops.alerts import WebhookError
from stock_pipelines.ops.incident_store import Incident, IncidentStore, alert_body
from stock_pipelines.ops.incident_tick import apply, record_preflight
from stock_pipelines.ops.incidents import PREFLIGHT_FAILED, preflight_observation
from stock_pipelines.ops.preflight import PreflightReport, run_preflight


def _dagster_storage(instance: dg.DagsterInstance):
    def probe() -> str:
        instance.get_runs_count()  # reads the run storage: SQLite file or PostgreSQL
        return f"{type(instance.run_storage).__name__} answers"

    return probe


def _redis_or_none(redis: RedisResource):
    try:
        return redis.client()
    except Exception:  # noqa: BLE001 - Redis itself may be what failed
        return None


def _alert(context: dg.OpExecutionContext, client, alerts: AlertResource, report: PreflightReport) -> None:
    """Record the outcome, open or resolve the incident, notice the warnings, deliver now."""
    sender, now = alerts.sender(), clock.now()
    try:
        if client is None:
            raise RedisError("no Redis client")
        store = IncidentStore(client, alerts.secrets())
        record_preflight(client, report.ok, report.describe(), now)
        apply(store, [preflight_observation({"ok": report.ok, "summary": report.describe()})], now)
        for number, warning in enumerate(report.warnings):
            context.log.warning(warning)
            store.notify_once("preflight_warning", "calendar", warning, f"{context.run_id}:{number}", now)
        delivery = drain(store, sender, now.timestamp())
    except RedisError as error:
        # no incident record without Redis: a failure is posted directly (again at the next run)
        context.log.warning(f"incidents not recorded ({type(error).__name__}): alerting directly")
        if not report.ok:
            incident = Incident(f"{PREFLIGHT_FAILED}:preflight:{context.run_id}", PREFLIGHT_FAILED, "preflight",
                                report.describe(), now.isoformat())
            try:
                sender.post(alert_body("firing", incident, report.describe(), now, alerts.secrets()))
            except WebhookError as failed:
                context.log.warning(f"pre-flight alert not delivered: {failed}")
        return
    for alert_id, why in delivery.failed.items():
        context.log.warning(f"alert {alert_id} not delivered ({why}): the incident sensor retries it")


@dg.op(
    pool=BROKER_POOL,  # issues (or reuses) the broker's access token
    description="Broker credentials and token, Redis, Dagster storage, archive writable, free disk, memory "
    "and CPU headroom, sources reachable, each real-time feed answering a test subscription, KRX "
    "calendar horizon."
)
def preflight_checks(
    context: dg.OpExecutionContext,
    redis: RedisResource,
    archive: ArchiveResource,
    broker: BrokerResource,
    alerts: AlertResource,
    preflight: PreflightResource,
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
        # the broker's settings as bound (fields over the deployment's variables): are they set?
        environ=preflight.settings(broker),
    )
    for result in report.results:
        (context.log.info if result.ok else context.log.error)(f"{result.name}: {result.detail}")
    client = _redis_or_none(redis)
    _alert(context, client, alerts, report)
    if not report.ok:
        missing_key = next((r for r in report.failures if r.name.endswith(" credentials")), None)
        if missing_key is not None and client is not None:
            # a missing API key cannot heal by itself: the breaker opens for good (and the
            # heartbeat sensor goes dormant) until a person resets it with `resume`
            breaker = RecoveryGovernance(client, broker_name).breaker()
            breaker.trip_permanently(f"pre-flight: {missing_key.detail}")
        raise dg.Failure(report.describe(), metadata={"report": dg.MetadataValue.json(report.to_json())})
    context.add_output_metadata({"report": dg.MetadataValue.json(report.to_json())})
    return report.to_json()


@dg.job(
    description="Pre-flight: is everything the trading day needs in place? Fails with a clear list.",
    tags={"stock_pipelines/run_kind": "preflight"},
)
def preflight_job() -> None:
    preflight_checks()
