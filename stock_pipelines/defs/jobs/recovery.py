"""Jobs the automation launches: recovery of one trading day (sensor-launched), the end-of-day
pipeline, and `resume_automation_job` (the Dagster way to leave dormant mode)."""

import dagster as dg

from stock_pipelines.defs.assets.broker_sample import quality_broker_sample
from stock_pipelines.defs.assets.day_volumes import broker_day_volumes
from stock_pipelines.defs.assets.quality_report import quality_report
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovered_trades import recovered_trades
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.ops.governance import RecoveryGovernance

RUN_KIND_TAG = "stock_pipelines/run_kind"  # dagster_home/dagster.yaml: at most 1 recovery run at a time
COLLECTOR_TAG = "stock_pipelines/collector"
WINDOW_TAG = "stock_pipelines/window"
ATTEMPT_TAG = "stock_pipelines/attempt"

DAY_PIPELINE = [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars, recovered_trades]

# The archive may have changed since the last materialization (the collector wrote up to its
# death), so raw_ticks and tick_minute_bars are rebuilt first; each step is idempotent.
# Mid-session the day's quality checks (day volume, completeness, ...) cannot pass yet, and a
# blocking failure would fail the recovery: recovery runs carry only their own check; the
# end-of-day job runs every check.
RECOVERY_SELECTION = dg.AssetSelection.assets(*DAY_PIPELINE).without_checks() | dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("recovered_minute_bars"), "every_gap_recovered")
)

recovery_job = dg.define_asset_job(
    "recovery_job",
    selection=RECOVERY_SELECTION,
    partitions_def=trading_day_partitions,
    # one process for the steps: a subprocess a step costs ~5 s of imports each, and the
    # time from a collector's death to its recovered bars is what this job is judged by
    executor_def=dg.in_process_executor,
    tags={RUN_KIND_TAG: "recovery"},
    description="Recover one trading day: raw_ticks -> tick_minute_bars -> gap_report -> recovered_minute_bars "
    "-> minute_bars, then the trade tier (recovered_trades). Launched by collector_heartbeat_sensor with the gap windows in gap_report's config.",
)

# The broker's day volumes and bar sample are fetched once the day is final, for the end of day: a
# recovery run during the session would have no final figures to fetch, and one after the close
# would spend those calls again. quality_report is downstream of minute_bars' blocking checks: a day that fails one gets no
# report in this run (its checks name what is wrong; `stock-pipelines report DATE --build` or
# materializing quality_report alone writes a NOT CERTIFIED report).
end_of_day_job = dg.define_asset_job(
    "end_of_day_job",
    selection=dg.AssetSelection.assets(
        *DAY_PIPELINE, broker_day_volumes, quality_broker_sample, quality_report
    ),
    partitions_def=trading_day_partitions,
    tags={RUN_KIND_TAG: "end_of_day"},
    description="The full pipeline for the day after the close, with every asset check, then the day's "
    "quality_report (certified when every blocking check passes).",
)


class ResumeConfig(dg.Config):
    reason: str
    by: str


@dg.op(description="A person ends dormant mode: resets the broker breakers, then resumes automatic recovery.")
def resume_automation(
    context: dg.OpExecutionContext, config: ResumeConfig, redis: RedisResource, broker: BrokerResource
) -> dict:
    try:
        result = RecoveryGovernance(redis.client(), broker.name()).resume(config.by, config.reason)
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    context.log.info(
        f"automatic recovery resumed by {config.by}: {config.reason}; breakers reset: "
        f"{result['breakers_reset'] or 'none'}"
    )
    return result


@dg.job(description="Leave dormant mode (same as `stock-pipelines resume --reason ...`).")
def resume_automation_job() -> None:
    resume_automation()
