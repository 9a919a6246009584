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
    (seen in test_browser.py). A check without the partitions would show one result for all days:
    only the day's verdict (minute_bars_day_certified, the newest day reported) is meant to; the
    freshness check (minute_bars_certified_in_time, the day due now) is on its own unpartitioned
    asset, certification_deadline."""
    from stock_pipelines.definitions import defs
    from stock_pipelines.defs.checks.day_verdict import DAY_CERTIFIED
    from stock_pipelines.defs.checks.freshness import CERTIFIED_IN_TIME
    from stock_pipelines.defs.partitions import trading_day_partitions

    graph = defs.resolve_asset_graph()
    daily = [key for key in graph.materializable_asset_keys if graph.get(key).partitions_def is not None]
    assert {key.to_user_string() for key in daily} >= {"raw_ticks", "minute_bars", "quality_report"}
    for key in daily:
        assert graph.get(key).partitions_def == trading_day_partitions, key
        assert graph.get(key).backfill_policy is None, key
    for check in graph.asset_check_keys:
        expected = None if check.name in (DAY_CERTIFIED, CERTIFIED_IN_TIME) else trading_day_partitions
        assert graph.get(check).partitions_def == expected, check
        if check.asset_key == dg.AssetKey("minute_bars"):
            assert check.name != CERTIFIED_IN_TIME, "minute_bars' checks judge its partition"


def test_every_step_that_calls_a_broker_is_in_the_broker_pool():
    """The steps that build a broker client (recovery, the broker's day volumes, the broker's bar
    sample, the pre-flight's token) and no other step: the checks that judge the broker's figures
    only read what those assets stored."""
    from stock_pipelines.definitions import defs
    from stock_pipelines.defs.broker_steps import BROKER_POOL

    nodes = {}
    for job in defs.get_repository_def().get_all_jobs():
        for node in job.graph.iterate_op_defs():
            nodes[node.name] = node
    pooled = {name for name, node in nodes.items() if node.pool == BROKER_POOL}
    assert pooled == {"recovered_minute_bars", "recovered_trades", "quality_broker_day_volumes",
                      "quality_broker_sample", "preflight_checks"}
    judges = {"minute_bars_minute_bars_match_broker", "minute_bars_minute_bars_day_volume"}
    assert judges <= set(nodes) - pooled  # the checks that judge the broker's figures call none
    assert {node.pool for name, node in nodes.items() if name not in pooled} == {None}
    # and no other module of the Dagster layer builds a broker client
    defs_dir = REPO_ROOT / "stock_pipelines" / "defs"
    callers = {
        path.relative_to(defs_dir).as_posix()
        for path in defs_dir.rglob("*.py")
        if any(call in path.read_text() for call in ("build_source(", "broker_source(", "broker.source("))
    }
    assert callers == {
        "resources.py",  # builds it
        "broker_steps.py",  # gates it
        "assets/recovery.py",
        "assets/recovered_trades.py",
        "assets/day_volumes.py",
        "assets/broker_sample.py",
    }


def test_paired_thresholds_are_one_check_with_a_severity_by_threshold():
    from stock_pipelines.defs.checks.severity import graded

    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
    assert graded(within_warn=True, within_error=True) == (True, error)
    assert graded(within_warn=False, within_error=True) == (False, warn)  # reported, not blocking
    assert graded(within_warn=False, within_error=False) == (False, error)  # blocking
    from stock_pipelines.definitions import defs

    names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"minute_bars_completeness", "raw_ticks_quarantine_share"} <= names
    assert not {"minute_bars_completeness_warn", "raw_ticks_quarantine_share_error"} & names


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


def test_the_quality_report_names_the_minute_bars_checks():
    from stock_pipelines.defs.checks.minute_bars_checks import minute_bars_checks
    from stock_pipelines.quality.render import CHECK_VERDICTS

    assert {key.name for checks in minute_bars_checks for key in checks.check_keys} == set(CHECK_VERDICTS)
