"""The one Dagster entry point (workspace.yaml and `dagster dev -m` load `defs` from here)."""

import dagster as dg

from stock_pipelines.defs.assets.raw_ticks import raw_ticks

defs = dg.Definitions(assets=[raw_ticks])
