"""quality_report: the day's completeness and consistency report (RFC-008), as tables in the
materialization metadata and as a standalone HTML file with charts. Downstream of minute_bars,
so a day failing a blocking check gets no report in that run; `stock-pipelines report DATE
--build` writes one for such a day (marked not certified)."""

from datetime import date

import dagster as dg

from stock_pipelines.defs.assets.broker_sample import quality_broker_sample
from stock_pipelines.defs.assets.recovery import minute_bars
from stock_pipelines.defs.checks.day_inputs import measures_for
from stock_pipelines.defs.checks.report_tables import report_metadata
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.defs.resources import LakeResource, QualityResource
from stock_pipelines.defs.tags import QUALITY, catalog
from stock_pipelines.quality.build import build_report


@dg.asset(
    partitions_def=trading_day_partitions,
    deps=[minute_bars, dg.AssetKey("recovered_trades"), *quality_broker_sample.keys],  # its trade level judges the recovered trades too
    group_name="quality",
    description="Completeness by collector and overall, a timeline of gaps and what filled them, symbols with "
    "remaining holes, consistency disagreements; certified when every blocking check passes. Tables here, "
    "HTML with charts at `html_path`.",
    **catalog(QUALITY, "html"),
)
def quality_report(
    context: dg.AssetExecutionContext, lake: LakeResource, quality: QualityResource
) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    built = build_report(measures_for(context, lake.root()), quality.config())
    quality = built.quality
    return dg.MaterializeResult(
        metadata={
            "certified": quality.certified,
            "completeness": quality.coverage.share,
            "missing_symbol_minutes": quality.coverage.expected_count - quality.coverage.present_count,
            "symbols_with_holes": dg.MetadataValue.json(built.summary["symbols_with_holes"]),
            **report_metadata(built),
            "html_path": dg.MetadataValue.path(str(built.html_path)),
            "summary_path": dg.MetadataValue.path(str(built.summary_path)),
            "date": day.isoformat(),
        }
    )
