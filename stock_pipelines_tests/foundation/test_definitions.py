"""Every definition loads: in-process, through `dagster definitions validate`, and in `dagster dev`."""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from stock_pipelines_tests.dagster_dev import REPO_ROOT, dagster_dev


def test_every_definition_loads_in_process():
    from stock_pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    asset_keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert "raw_ticks" in asset_keys
    for job in repository.get_all_jobs():  # every job (and the implicit asset job) resolves
        assert job.name


def test_daily_assets_keep_the_default_backfill_and_every_check_is_per_day():
    """Partitioned checks record correctly only in single-partition job runs (dagster 1.13). The
    default (no backfill policy) gives one run per day; an explicit BackfillPolicy.multi_run(1)
    turned the UI's backfill into an asset backfill whose check results lost their partition
    (seen in test_browser.py). A check without the partitions would show one result for all days."""
    from stock_pipelines.definitions import defs
    from stock_pipelines.defs.partitions import trading_day_partitions

    graph = defs.resolve_asset_graph()
    daily = [key for key in graph.materializable_asset_keys if graph.get(key).partitions_def is not None]
    assert {key.to_user_string() for key in daily} >= {"raw_ticks", "minute_bars", "quality_report"}
    for key in daily:
        assert graph.get(key).partitions_def == trading_day_partitions, key
        assert graph.get(key).backfill_policy is None, key
    for check in graph.asset_check_keys:
        assert graph.get(check).partitions_def == trading_day_partitions, check


def test_dagster_definitions_validate_accepts_the_workspace(tmp_path: Path):
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"DAGSTER_HOME": str(tmp_path), "PATH": str(dagster.parent)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message }
        }
      }
    }
  }
  assetNodes { assetKey { path } isPartitioned }
}
"""


@pytest.mark.integration
def test_dagster_dev_loads_the_workspace(tmp_path: Path):
    with dagster_dev(tmp_path) as dev:
        deadline = time.monotonic() + 120
        while True:
            data = dev.graphql(WORKSPACE_QUERY)
            (entry,) = data["workspaceOrError"]["locationEntries"]
            if entry["loadStatus"] == "LOADED" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert entry["name"] == "stock_pipelines"
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert nodes["raw_ticks"]["isPartitioned"] is True
