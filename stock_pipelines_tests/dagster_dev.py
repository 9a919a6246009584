"""Start a real `dagster dev` (webserver + daemon) for a test, and talk GraphQL to it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from stock_pipelines.soak.processes import free_port  # noqa: F401 - the tests take it from here

REPO_ROOT = Path(__file__).resolve().parent.parent
# The run queue is polled every 5 s by default: a test that waits on many runs, or times a launch,
# has the queue polled every second instead (pass it as `instance_yaml`, alone or after another).
QUICK_RUN_QUEUE = """
run_coordinator:
  config:
    dequeue_interval_seconds: 1
"""
LOCATION = {"repositoryLocationName": "stock_pipelines", "repositoryName": "__repository__"}
SCHEDULE = """query Schedule($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
  ... on Schedule { scheduleState { id status } } } }"""
STOP_SCHEDULE = """mutation Stop($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } } }"""


def quiet_env(*, data_dir: Path, archive_dir: Path, redis_url: str, prefix: str, kis_url: str, app_key: str,
              app_secret: str) -> dict[str, str]:
    """The environment of a `dagster dev` whose runs the test launches itself: its lake, archive,
    Redis namespace and KIS endpoint; the daemon's sensors launch nothing."""
    return {
        "STOCK_PIPELINES_DATA_DIR": str(data_dir),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(archive_dir),
        "REDIS_URL": redis_url,
        "STOCK_PIPELINES_REDIS_PREFIX": prefix,
        "KIS_BASE_URL": kis_url,
        "KIS_APP_KEY": app_key,
        "KIS_APP_SECRET": app_secret,
        "FEATURE_AUTO_RECOVERY_ENABLED": "false",
        "FEATURE_HEARTBEAT_MONITORING_ENABLED": "false",
        "FEATURE_PREFLIGHT_ENABLED": "false",
    }


@dataclass
class DagsterDev:
    url: str
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
        )
        if response.is_error:  # the body names the resolver's exception; raise_for_status would drop it
            raise AssertionError(f"GraphQL HTTP {response.status_code}: {response.text[:4000]}")
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def stop_schedules(self, *names: str) -> None:
        """Stop schedules that would fire on the real clock (Dagster's, which no project clock moves)."""
        for name in names:
            selector = {**LOCATION, "scheduleName": name}
            state = self.graphql(SCHEDULE, {"selector": selector})["scheduleOrError"]["scheduleState"]
            if state["status"] != "STOPPED":
                stopped = self.graphql(STOP_SCHEDULE, {"id": state["id"]})["stopRunningSchedule"]
                assert stopped["scheduleState"]["status"] == "STOPPED", (name, stopped)


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


@contextlib.contextmanager
def dagster_dev(
    tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 120, instance_yaml: str = "",
    workspace: Path = REPO_ROOT / "workspace.yaml",
) -> Iterator[DagsterDev]:
    """`instance_yaml` (one or more YAML documents) is merged into the project's dagster.yaml for
    this instance, mappings key by key; `workspace` names the code locations (the project's)."""
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    for override in yaml.safe_load_all(instance_yaml):
        config = _merged(config, override or {})
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    # DAGSTER_HOME last: a caller's env built from os.environ carries the DAGSTER_HOME that `./run`
    # exports (the repository's dagster_home/), and dagster dev must use this test's own instance.
    process_env = {**os.environ, **(env or {}), "DAGSTER_HOME": str(home)}
    # an instance_yaml may name a class of this package (stock_pipelines_tests.no_scheduler)
    process_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), process_env.get("PYTHONPATH")) if p)
    if "STOCK_PIPELINES_DATA_DIR" not in (env or {}):
        # never the repository's data/ (its lake and embedded Redis): the sensors tick in here
        process_env["STOCK_PIPELINES_DATA_DIR"] = str(tmp_path / "data")
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("w") as log_handle:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=process_env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster dev did not answer within {timeout}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield DagsterDev(url=url, home=home, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if not process_env.get("REDIS_URL"):  # the embedded Redis its sensors started ends with it
            from stock_pipelines.redis_conn import stop_embedded_redis

            stop_embedded_redis(Path(process_env["STOCK_PIPELINES_DATA_DIR"]))
