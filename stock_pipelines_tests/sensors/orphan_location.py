"""A code location for the orphaned-run tests: a job that holds its run worker until told to
finish, and the project's orphaned_run_sensor (the real one), without the project's other
definitions (their imports would double the start of each code server)."""

import time
from pathlib import Path

import dagster as dg

from stock_pipelines.defs.sensors.orphaned_runs import orphaned_run_sensor


class HoldConfig(dg.Config):
    release_file: str  # the op returns once this file exists
    timeout_s: float = 300.0


@dg.op
def hold(context: dg.OpExecutionContext, config: HoldConfig) -> None:
    deadline = time.monotonic() + config.timeout_s
    while not Path(config.release_file).exists():
        if time.monotonic() > deadline:
            raise dg.Failure(f"{config.release_file} did not appear within {config.timeout_s} s")
        time.sleep(0.2)


@dg.job(executor_def=dg.in_process_executor)  # the run worker is the only process of the run
def hold_job() -> None:
    hold()


defs = dg.Definitions(jobs=[hold_job], sensors=[orphaned_run_sensor])
