"""The resources a test materializes with: the project's, with the ones the test gives in their
place (`resources(archive=ArchiveResource(quarantine_error_share=0.05))`)."""

from __future__ import annotations

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.io_manager import LAKE, LakeIOManager
from stock_pipelines.defs.resources import default_resources


def resources(**given: dg.ConfigurableResource) -> dict[str, dg.ConfigurableResource]:
    bound = {**default_resources(), **given}
    if "lake" in given:
        bound[LAKE] = LakeIOManager(data_dir=given["lake"].data_dir)
    if "broker" in given and "alerts" not in given:
        bound["alerts"] = AlertResource(broker=given["broker"])  # alerts scrub the given broker's secrets
    return bound
