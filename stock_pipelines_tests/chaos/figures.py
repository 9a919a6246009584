"""Shared bits of the chaos scenarios: the figures each one prints and appends to the results
file (env STOCK_PIPELINES_CHAOS_RESULTS, one JSON object a line; `benchmarks/chaos_report.py`
turns them into the table in docs/reliability.md), and the pipeline run on a simulated day."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import dagster as dg
import httpx

from stock_pipelines import lake
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import ASSETS, DAY
from stock_pipelines_tests.truth import truth_bars

RESULTS_ENV = "STOCK_PIPELINES_CHAOS_RESULTS"
FIELDS = ("bars_lost", "calls", "lower_bound_calls", "rate_limited", "retries", "time_to_detect_s",
          "time_to_recover_s")


def record(scenario: str, outcome: str, **figures: object) -> dict:
    """Print the scenario's figures and append them to the results file, if one is set."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]  # "path::name (call)" -> node id
    row = {"scenario": scenario, "outcome": outcome, "test": test, **{k: figures.get(k) for k in FIELDS},
           **{k: v for k, v in figures.items() if k not in FIELDS}}
    line = json.dumps(row, default=str, sort_keys=False)
    print(f"CHAOS {line}")
    if path := os.environ.get(RESULTS_ENV):
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    return row


def set_fault(url: object, **fault: object) -> None:
    httpx.post(f"{url}/admin/faults", json=fault, timeout=5).raise_for_status()


def exchange_stats(url: object) -> dict:
    return httpx.get(f"{url}/admin/stats", timeout=5).json()


def bars_lost(url: object) -> int:
    """Bars of the truth (built from the exchange's trades) that the final minute_bars lack or carry
    with other values."""
    expected = truth_bars(url)
    if not lake.partition_exists("minute_bars", DAY):
        return expected.height
    got = lake.read_partition("minute_bars", DAY).select(expected.columns)
    return expected.join(got, on=expected.columns, how="anti", nulls_equal=True).height


@dataclass
class PipelineRun:
    result: dg.ExecuteInJobResult
    seconds: float
    metadata: dict = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return int(self.metadata.get("calls", 0))

    @property
    def retries(self) -> dict:
        return dict(self.metadata.get("retries", {}))


def run_pipeline(
    instance: dg.DagsterInstance | None = None, bound: dict[str, dg.ConfigurableResource] | None = None
) -> PipelineRun:
    """raw_ticks -> ... -> minute_bars for DAY with the `bound` resources (default: the environment
    decides); a failed step does not raise (the outcome is asserted)."""
    started = time.monotonic()
    result = dg.materialize(ASSETS, partition_key=DAY.isoformat(),
                            instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False,
                            resources=bound if bound is not None else resources())
    seconds = round(time.monotonic() - started, 2)
    metadata: dict = {}
    materialized = [e for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey("recovered_minute_bars")]
    if materialized:
        raw = materialized[0].materialization.metadata
        metadata = {k: getattr(v, "value", v) for k, v in raw.items()}
    return PipelineRun(result, seconds, metadata)


def tick_bars_height() -> int:
    if not lake.partition_exists("tick_minute_bars", DAY):
        return 0
    return lake.read_partition("tick_minute_bars", DAY).height

