"""Warnings the project knowingly accepts, kept out of what a person reads from the CLI.

Each is matched by its exact message start, never by a whole category, so a new warning still
shows. The tests keep seeing them (pytest's own filters in pyproject.toml decide there).
`install()` filters them in the CLI process and adds them to `PYTHONWARNINGS`, which the
processes a command starts inherit: the demo's `dagster-daemon`, its code server and run
workers, `dagster dev` under `stock-pipelines ui` (`./run ui` sets the same `PYTHONWARNINGS`).
"""

from __future__ import annotations

import os
import re
import warnings

ACCEPTED = (
    # dagster PreviewWarning: the day's asset checks are partitioned on purpose (one result a day)
    "Specifying a partitions_def on an AssetCheckSpec is currently in preview",
    # exchange_calendars 4.13 on pandas 3.1, while the calendar cache is built; its result is correct
    "Series.values returning an ndarray that drops timezone information",
    # dagster SupersessionWarning: `./run ui` and `stock-pipelines ui` use `dagster dev`, not `dg dev`
    "Function `dev_command` is superseded",
    # dagster BetaWarning raised by dagster itself: binding the resources to a job a sensor targets
    # (preflight_job, under collector_heartbeat_sensor) rebuilds the sensor with `owners=[]`
    "Parameter `owners` of initializer `SensorDefinition.__init__` is currently in beta",
)


def install() -> None:
    for message in ACCEPTED:
        warnings.filterwarnings("ignore", message=re.escape(message))
    os.environ["PYTHONWARNINGS"] = python_warnings(os.environ.get("PYTHONWARNINGS", ""))


def python_warnings(existing: str) -> str:
    """`PYTHONWARNINGS` with ours first: a person's own entries come later and so take precedence."""
    ours = [f"ignore:{message}" for message in ACCEPTED]
    theirs = [entry for entry in existing.split(",") if entry and entry not in ours]
    return ",".join([*ours, *theirs])
