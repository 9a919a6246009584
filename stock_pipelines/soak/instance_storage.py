"""`python -m stock_pipelines.soak.instance_storage DAGSTER_HOME`: create the instance's SQLite
storages (runs, event log, schedules) once, before the soak starts the webserver and the daemon
together; two processes creating the same SQLite schema at one time make one of them fail
("table ... already exists")."""

from __future__ import annotations

import sys


def create_storages(home: str) -> None:
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_event(dg.AssetKey("soak_storage_probe"))


if __name__ == "__main__":
    create_storages(sys.argv[1])
