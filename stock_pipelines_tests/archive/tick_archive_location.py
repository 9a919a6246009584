"""A code location with only the tick_archive definitions, for daemon tests of its sensor."""

import dagster as dg

from stock_pipelines.defs.assets.tick_archive import (
    tick_archive,
    tick_archive_fresh,
    tick_archive_fresh_job,
    tick_archive_sensor,
)
from stock_pipelines.defs.resources import ArchiveResource

defs = dg.Definitions(
    assets=[tick_archive],
    asset_checks=[tick_archive_fresh],
    jobs=[tick_archive_fresh_job],
    sensors=[tick_archive_sensor],
    resources={"archive": ArchiveResource()},
    executor=dg.in_process_executor,
)
