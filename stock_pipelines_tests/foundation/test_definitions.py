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
