"""The one Dagster entry point (workspace.yaml and `dagster dev -m` load `defs` from here)."""

import dagster as dg

from stock_pipelines.defs.assets.day_volumes import broker_day_volumes
from stock_pipelines.defs.assets.gap_report import gap_report
from stock_pipelines.defs.assets.quality_report import quality_report
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovery import minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_archive import tick_archive, tick_archive_fresh, tick_archive_sensor
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.checks.minute_bars_checks import minute_bars_checks
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.jobs.preflight import preflight_job
from stock_pipelines.defs.jobs.recovery import end_of_day_job, recovery_job, resume_automation_job
from stock_pipelines.defs.jobs.retention import archive_retention_job, archive_retention_schedule
from stock_pipelines.defs.resources import default_resources
from stock_pipelines.defs.schedules import end_of_day_schedule, preflight_schedule
from stock_pipelines.defs.sensors.end_of_day_heal import end_of_day_heal_sensor
from stock_pipelines.defs.sensors.heartbeat import collector_heartbeat_sensor
from stock_pipelines.defs.sensors.recovery_runs import recovery_failure_sensor, recovery_success_sensor

# Runs execute in one process: the default multiprocess executor starts a process per step (an asset
# and each of its checks), which on the 2-core machines this targets turns a 3-day backfill from
# under a minute into several.
defs = dg.Definitions(
    executor=dg.in_process_executor,
    assets=[raw_ticks, tick_minute_bars, tick_archive, broker_day_volumes, gap_report, recovered_minute_bars,
            minute_bars, quality_report],
    asset_checks=[*raw_ticks_checks, tick_archive_fresh, *minute_bars_checks],
    jobs=[archive_retention_job, recovery_job, end_of_day_job, preflight_job, resume_automation_job],
    schedules=[archive_retention_schedule, preflight_schedule, end_of_day_schedule],
    sensors=[
        tick_archive_sensor,
        collector_heartbeat_sensor,
        recovery_success_sensor,
        recovery_failure_sensor,
        end_of_day_heal_sensor,
    ],
    resources=default_resources(),
)
