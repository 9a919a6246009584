"""The job that evaluates minute_bars' freshness check alone (no asset is materialized)."""

import dagster as dg

from stock_pipelines.defs.checks.freshness import minute_bars_certified_in_time

minute_bars_freshness_job = dg.define_asset_job(
    "minute_bars_freshness_job",
    selection=dg.AssetSelection.checks(minute_bars_certified_in_time),
    description="Is the trading day due by now certified? (minute_bars_certified_in_time)",
)
