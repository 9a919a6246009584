"""The production instance (docker/dagster.yaml) on a real PostgreSQL server started by the test:
a raw_ticks partition materialized with its checks, one sensor daemon iteration, and the rows
both left in PostgreSQL's run, event-log, asset-check and tick tables."""

import logging
import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.sensor import execute_sensor_iteration

from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.sim.archive_day import write_day_archive
from stock_pipelines_tests.dagster_dev import REPO_ROOT
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.production.postgres import PostgresServer, postgres_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DAY = date(2026, 11, 17)  # a regular session, 09:00-15:30
NOW = datetime(2026, 11, 18, 11, 0, tzinfo=SEOUL)  # the sensors' clock: the next session, in trading
DATABASE = "dagster"


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        server.create_database(DATABASE)
        yield server


@pytest.fixture
def production_instance(tmp_path: Path, postgres: PostgresServer, redis_server, monkeypatch):
    """docker/dagster.yaml as $DAGSTER_HOME/dagster.yaml, its env vars pointing at the test's servers."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "docker" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(postgres.port),
        "DAGSTER_POSTGRES_DB": DATABASE,
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": "",
        "REDIS_URL": redis_server.url,
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path / "lake"),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(tmp_path / "archive"),
        ENV_FAKE_NOW: fake_now_value(NOW),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def test_partition_and_sensor_tick_are_stored_in_postgres(production_instance, postgres, tmp_path):
    instance = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    archived = write_day_archive(tmp_path / "archive", DAY, symbols=4, activity=0.3, corrupt=3)
    result = dg.materialize(
        [raw_ticks, *raw_ticks_checks], partition_key=DAY.isoformat(), instance=instance, resources=resources()
    )
    assert result.success
    materialization = result.asset_materializations_for_node("raw_ticks")[0]
    assert materialization.metadata["rows_kept"].value == archived.trades_written
    assert materialization.metadata["quarantined"].value == 3

    # One iteration of the daemon's sensor loop, as `dagster-daemon run` does it, on this instance.
    with create_test_daemon_workspace_context(
        WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")]), instance
    ) as workspace:
        list(execute_sensor_iteration(workspace, logging.getLogger("sensor-test"), None, None))

    run_id = result.run_id
    rows = postgres.query(DATABASE, "SELECT status, partition FROM runs WHERE run_id = %s", (run_id,))
    assert rows == [("SUCCESS", DAY.isoformat())]
    events = dict(postgres.query(
        DATABASE,
        "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY dagster_event_type",
        (run_id,),
    ))
    assert events["ASSET_MATERIALIZATION"] == 2  # raw_ticks and its raw_ticks_quarantine, one step
    assert events["ASSET_CHECK_EVALUATION"] == len(raw_ticks_checks)
    assert events["PIPELINE_SUCCESS"] == 1  # RUN_SUCCESS keeps its legacy name in storage
    stored = postgres.query(
        DATABASE,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        (run_id,),
    )
    assert sorted(stored) == [('["raw_ticks"]', DAY.isoformat()), ('["raw_ticks_quarantine"]', DAY.isoformat())]
    checks = postgres.query(
        DATABASE,
        "SELECT check_name, execution_status, partition FROM asset_check_executions WHERE run_id = %s",
        (run_id,),
    )
    expected_checks = {key.name for checks_def in raw_ticks_checks for key in checks_def.check_keys}
    assert {(name, status) for name, status, _ in checks} == {(name, "SUCCEEDED") for name in expected_checks}
    assert {partition for _, _, partition in checks} == {DAY.isoformat()}

    ticks = postgres.query(
        DATABASE,
        "SELECT tick_body::json ->> 'job_name', status, coalesce(tick_body::json ->> 'skip_reason', '') "
        "FROM job_ticks WHERE type = 'SENSOR'",
    )
    by_sensor = {name: (status, reason) for name, status, reason in ticks}
    assert set(by_sensor) >= {"tick_archive_sensor", "collector_heartbeat_sensor"}, ticks
    assert all(status in {"SUCCESS", "SKIPPED"} for status, _ in by_sensor.values()), ticks
    # the project clock says NOW, in a session: the sensor observed that day's (empty) partition
    observed = postgres.query(DATABASE, "SELECT partition FROM event_logs WHERE dagster_event_type = "
                              "'ASSET_OBSERVATION' AND asset_key = %s", ('["tick_archive"]',))
    assert observed == [(NOW.date().isoformat(),)], by_sensor
