"""The soak's Dagster: `dagster-webserver` and `dagster-daemon run` on one instance, and the
schedules ticked on the exchange's clock.

Dagster's scheduler reads the wall clock, which no project clock moves: on a simulated week at
hundreds of times real speed its cron ticks would fire for the real date. So this instance has
no daemon scheduler (`soak.scheduler`: the daemon can start at once, beside the webserver) and
`ScheduleTicker` evaluates each one at its cron ticks on the exchange's timeline: `futureTicks` gives the tick
times, `scheduleDryRun` runs the schedule's own function in the code location at that tick, and
each run request it returns is launched with `launchRun` (its run key once, as the daemon would).
Sensors run in the daemon as deployed, on the project clock (STOCK_PIPELINES_FAKE_NOW)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from stock_pipelines.soak.processes import Child, Children, free_port, wait_until
from stock_pipelines.soak.scheduler import INSTANCE_CONFIG as NO_DAEMON_SCHEDULER

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION = {"repositoryLocationName": "stock_pipelines", "repositoryName": "__repository__"}
# On a loaded 2-core machine a run's launch through the code server can outlast Dagster's 60 s
# gRPC deadline; the default coordinator then leaves the run STARTING for good. The soak's
# instance retries such launches and allows the code server 5 minutes a call.
RUN_QUEUE = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                 "config": {"dequeue_interval_seconds": 1, "max_user_code_failure_retries": 5,
                                            "user_code_failure_retry_delay": 10}}}
GRPC_TIMEOUT = {"DAGSTER_GRPC_TIMEOUT_SECONDS": "300"}

SCHEDULES = """query { schedulesOrError(repositorySelector: {repositoryLocationName: "stock_pipelines",
  repositoryName: "__repository__"}) { ... on Schedules { results { name pipelineName cronSchedule executionTimezone
  scheduleState { id status } } } } }"""
FUTURE_TICKS = """query Ticks($selector: ScheduleSelector!, $cursor: Float!, $until: Float!) {
  scheduleOrError(scheduleSelector: $selector) { ... on Schedule {
    futureTicks(cursor: $cursor, until: $until) { results { timestamp } } } } }"""
DRY_RUN = """mutation DryRun($selector: ScheduleSelector!, $timestamp: Float!) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename ... on DryRunInstigationTick { evaluationResult { skipReason
      error { message } runRequests { runKey jobName runConfigYaml tags { key value } } } }
    ... on PythonError { message } } }"""
LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidStepError { invalidStepKey } } }"""
SENSORS = """query { sensorsOrError(repositorySelector: {repositoryLocationName: "stock_pipelines",
  repositoryName: "__repository__"}) { ... on Sensors { results { name sensorState { id status } } } } }"""
STOP_SENSOR = """mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }"""
# what looks at "today" and the collectors: past the week, the project clock runs on into days
# with no collectors, where these would open incidents and launch runs nobody waits for
TODAY_SENSORS = ("collector_heartbeat_sensor", "tick_archive_sensor", "incident_sensor")
INCIDENT_SENSOR = "incident_sensor"
SENSOR_CURSOR = """query Cursor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { typeSpecificData { ... on SensorData { lastCursor } } } } } }"""
SENSOR_DRY_RUN = """mutation DryRun($selector: SensorSelector!, $cursor: String) {
  sensorDryRun(selectorData: $selector, cursor: $cursor) {
    __typename ... on DryRunInstigationTick { evaluationResult { skipReason cursor error { message } } }
    ... on PythonError { message } ... on SensorNotFoundError { message } } }"""
DAEMONS = """query { instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""
BUSY = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
RUNS = """query { runsOrError(limit: 1000) { ... on Runs { results { runId jobName status tags { key value } } } } }"""


def write_instance(home: Path, run_slots: int | None = None) -> None:
    """The project's dagster.yaml (SQLite under `home`, the run queue and its limits), with the
    queue polled every second (the soak's runs start as soon as a slot is free), launches that
    hit the code server's deadline retried (`RUN_QUEUE`), and no daemon scheduler. `run_slots`
    (None: the project's) raises the concurrent runs, recoveries keeping one slot free for the
    others as deployed: a run's process start is most of a short run's time on a loaded machine,
    and overlapping the starts is what shortens the quick soak's drain."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    config["run_coordinator"] = {**config.get("run_coordinator", {}), **RUN_QUEUE["run_coordinator"]}
    config["scheduler"] = dict(NO_DAEMON_SCHEDULER)
    if run_slots is not None:
        runs = config["concurrency"]["runs"]
        runs["max_concurrent_runs"] = run_slots
        for limit in runs.get("tag_concurrency_limits", []):
            limit["limit"] = max(1, run_slots - 1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def prepare_instance(children: Children, home: Path, env: dict[str, str], run_slots: int | None = None) -> Child:
    """Write the instance and create its storages in a process of its own (`instance_storage`),
    while the harness starts the rest; `DagsterStack.start` waits for it."""
    write_instance(home, run_slots)
    return children.start("dagster_storage", [sys.executable, "-m", "stock_pipelines.soak.instance_storage",
                                              str(home)], {**env, "DAGSTER_HOME": str(home)}, "dagster-storage.log")


@dataclass
class DagsterStack:
    children: Children
    env: dict[str, str]
    home: Path
    url: str = ""
    webserver: Child | None = None
    daemon: Child | None = None
    daemon_starts: int = 0
    load_s: float = 0.0   # wall seconds from the webserver's start to its first answer
    _started: float = 0.0

    def wait_for_storage(self, storage: Child, timeout: float = 120.0) -> None:
        """Until `prepare_instance`'s process has created the storages (RuntimeError if it failed)."""
        wait_until("the Dagster instance's storages", lambda: not storage.alive(), timeout)
        if storage.process.returncode != 0:
            raise RuntimeError(f"creating the Dagster instance's storages failed; log {storage.log}")

    def start(self) -> None:
        """The webserver (`wait_for_webserver`); the daemon is `start_daemon`."""
        self.env = {**self.env, **GRPC_TIMEOUT, "DAGSTER_HOME": str(self.home)}
        port = free_port()
        bin_dir = Path(sys.executable).parent
        self.webserver = self.children.start(
            "webserver", [str(bin_dir / "dagster-webserver"), "-w", str(REPO_ROOT / "workspace.yaml"),
                          "-h", "127.0.0.1", "-p", str(port)], self.env, "webserver.log")
        self.url = f"http://127.0.0.1:{port}"
        self._started = time.monotonic()

    def wait_for_webserver(self, timeout: float = 240.0) -> None:
        wait_until("the Dagster webserver", self._answers, timeout, self.webserver, every=1)
        self.load_s = time.monotonic() - self._started

    def start_daemon(self) -> None:
        bin_dir = Path(sys.executable).parent
        self.daemon_starts += 1
        self.daemon = self.children.start(
            "dagster_daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            self.env, "dagster-daemon.log")

    def kill_daemon(self) -> None:
        """SIGKILL to the daemon process alone, as the OOM killer or a crash would end it: its code
        server and the run workers it launched live on and finish their runs (the code server
        stops once they are done). Killing the whole group, the runs too, would leave them STARTED
        for good: the default run launcher cannot tell Dagster's run monitoring that a worker died."""
        import signal

        if self.daemon is not None and self.daemon.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.daemon.process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.daemon.process.wait(10)

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/server_info", timeout=3).status_code == 200
        return False

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 120) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                              timeout=timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL: {body['errors']}")
        return body["data"]

    def sensors_running(self) -> bool:
        """The daemon's sensor daemon has reported healthy (it has loaded the code location)."""
        try:
            statuses = self.graphql(DAEMONS, timeout=30)["instance"]["daemonHealth"]["allDaemonStatuses"]
        except (httpx.HTTPError, RuntimeError):
            return False
        return any(s["daemonType"] == "SENSOR" and s["healthy"] for s in statuses)

    def schedules(self) -> list[dict]:
        return self.graphql(SCHEDULES)["schedulesOrError"]["results"]

    def stop_sensors(self, names: tuple[str, ...], timeout_s: float = 60.0) -> None:
        """Stop them, and again until three reads a second apart say STOPPED: a sensor ticking every
        wall second can write its state back from a tick that began before the stop, undoing it.
        RuntimeError if one still runs after `timeout_s`."""
        deadline, settled = time.time() + timeout_s, 0
        while settled < 3:
            running = [s for s in self.graphql(SENSORS)["sensorsOrError"]["results"]
                       if s["name"] in names and s["sensorState"]["status"] != "STOPPED"]
            settled = 0 if running else settled + 1
            if running and time.time() > deadline:
                raise RuntimeError(f"sensors still running after {timeout_s:.0f} s: {[s['name'] for s in running]}")
            for sensor in running:
                self.graphql(STOP_SENSOR, {"id": sensor["sensorState"]["id"]})
            time.sleep(1)

    def evaluate_sensor(self, name: str) -> str:
        """One evaluation of the sensor's own function in the code location, now, from its last
        cursor (a dry run: whatever the function does happens, its cursor is not stored); its
        skip reason. RuntimeError if it failed."""
        selector = {**LOCATION, "sensorName": name}
        sensor = self.graphql(SENSOR_CURSOR, {"selector": selector})["sensorOrError"]
        if sensor["__typename"] != "Sensor":
            raise RuntimeError(f"sensor {name}: {sensor['__typename']}")
        cursor = (sensor["sensorState"]["typeSpecificData"] or {}).get("lastCursor")
        result = self.graphql(SENSOR_DRY_RUN, {"selector": selector, "cursor": cursor})["sensorDryRun"]
        evaluation = result.get("evaluationResult")
        if evaluation is None or evaluation.get("error"):
            raise RuntimeError(f"sensor {name}: {result.get('message') or evaluation['error']['message']}")
        return evaluation.get("skipReason") or ""

    def runs(self) -> list[dict]:
        return self.graphql(RUNS)["runsOrError"]["results"]

    def runs_quietly(self) -> list[dict]:
        """`runs()`, or none while the webserver is too busy to answer."""
        try:
            return self.runs()
        except (httpx.HTTPError, RuntimeError):
            return []

    def wait_for_runs(self, timeout_s: float, say, every_s: float) -> bool:
        """Wait (wall time) until no run is queued or running; False if some still are after `timeout_s`.
        `say` gets a line naming the busy jobs every `every_s` seconds."""
        deadline, last_said = time.time() + timeout_s, 0.0
        while time.time() < deadline:
            busy = [r for r in self.runs_quietly() if r["status"] in BUSY]
            if not busy:
                return True
            if time.time() - last_said >= every_s:
                say(f"waiting for {len(busy)} run(s): {', '.join(sorted({r['jobName'] for r in busy}))}")
                last_said = time.time()
            time.sleep(1)
        return False


@dataclass
class ScheduleTicker:
    """Every schedule's cron ticks in [first, last] (exchange time, epoch seconds), listed once;
    `tick(now)` evaluates and launches the ticks the exchange's clock has passed."""

    stack: DagsterStack
    first: float
    last: float
    only: tuple[str, ...] | None = None   # the schedules ticked (None: every one)
    launched: list[dict] = field(default_factory=list)
    skipped: int = 0
    collapsed: int = 0   # overdue ticks passed over for a later one of the same schedule
    errors: list[str] = field(default_factory=list)
    _run_keys: set[str] = field(default_factory=set)
    _due: list[tuple[float, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for schedule in self.stack.schedules():
            if self.only is not None and schedule["name"] not in self.only:
                continue
            selector = {**LOCATION, "scheduleName": schedule["name"]}
            ticks = self.stack.graphql(FUTURE_TICKS, {"selector": selector, "cursor": self.first, "until": self.last})
            self._due += [(t["timestamp"], schedule) for t in ticks["scheduleOrError"]["futureTicks"]["results"]]
        self._due.sort(key=lambda item: item[0])

    def tick(self, now: float) -> list[dict]:
        """Evaluate the ticks `now` has passed; of a schedule's several overdue ticks only the
        latest, as Dagster's scheduler does when it has fallen behind (a night at thousands of
        times real speed passes a dozen ticks between two calls)."""
        latest: dict[str, tuple[float, dict]] = {}
        while self._due and self._due[0][0] <= now:
            timestamp, schedule = self._due.pop(0)
            if schedule["name"] in latest:
                self.collapsed += 1
            latest[schedule["name"]] = (timestamp, schedule)
        fresh = []
        for timestamp, schedule in sorted(latest.values(), key=lambda item: item[0]):
            try:
                fresh += self._evaluate(schedule, {**LOCATION, "scheduleName": schedule["name"]}, timestamp)
            except (httpx.HTTPError, RuntimeError, TypeError, ValueError, KeyError) as error:
                # one schedule's tick that cannot be launched is the soak's finding, not its end
                self.errors.append(f"{schedule['name']} at {timestamp}: {type(error).__name__}: {error}")
        return fresh

    def _evaluate(self, schedule: dict, selector: dict, timestamp: float) -> list[dict]:
        name = schedule["name"]
        # the dry run evaluates the first tick at or after the timestamp it is given
        result = self.stack.graphql(DRY_RUN, {"selector": selector, "timestamp": timestamp - 0.5})["scheduleDryRun"]
        evaluation = result.get("evaluationResult")
        if evaluation is None or evaluation.get("error"):
            self.errors.append(f"{name} at {timestamp}: {result.get('message') or evaluation['error']['message']}")
            return []
        if not evaluation["runRequests"]:
            self.skipped += 1
            return []
        fresh = []
        for request in evaluation["runRequests"]:
            if request["runKey"] and request["runKey"] in self._run_keys:
                continue
            launched = self._launch(name, request["jobName"] or schedule["pipelineName"], request)
            if launched is not None:
                self._run_keys.add(request["runKey"] or "")
                fresh.append(launched)
        self.launched += fresh
        return fresh

    def _launch(self, schedule: str, job: str, request: dict) -> dict | None:
        tags = {t["key"]: t["value"] for t in request["tags"]}
        tags.update({"dagster/schedule_name": schedule, "stock_pipelines/soak": "exchange-clock schedule tick"})
        if request["runKey"]:
            tags["dagster/run_key"] = request["runKey"]
        params = {
            "selector": {**LOCATION, "jobName": job},
            "runConfigData": run_config_data(request["runConfigYaml"]),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = self.stack.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            self.errors.append(f"{schedule} {request['runKey']}: {result}")
            return None
        return {"schedule": schedule, "run_id": result["run"]["runId"], "run_key": request["runKey"],
                "partition": tags.get("dagster/partition")}


def run_config_data(run_config_yaml: str) -> dict:
    """A run request's config as `launchRun` takes it (JSON): YAML reads an unquoted ISO date as a
    date, which is a string again here, as the schedule wrote it."""
    return json.loads(json.dumps(yaml.safe_load(run_config_yaml) or {}, default=str))


def end_the_watch(stack: DagsterStack, now: Callable[[], datetime], next_open: datetime) -> list[str]:
    """Past the week, before the next session opens: stop every sensor that watches today's
    collectors and archive (`TODAY_SENSORS`), then evaluate the incident sensor once more, past
    the fleet's clean stop (a stopping collector is not down, a closed market's archive not
    stale), where the incidents of the last day resolve. The evaluation is a dry run at once,
    not the daemon's next tick: at the night speed the night lasts less than the sensor's 30 s
    interval, and a tick in the next session would judge an archive nobody writes any more.
    Returns notes for the soak's outcome (empty when all went as planned)."""
    try:
        stack.stop_sensors(TODAY_SENSORS)
        verdict = stack.evaluate_sensor(INCIDENT_SENSOR)
    except (httpx.HTTPError, RuntimeError) as error:
        return [f"the sensors of today could not be stopped and evaluated for the drain: {error}"]
    evaluated = now()
    if evaluated >= next_open:
        return [f"the incidents' last evaluation ({verdict}) ended at {evaluated:%Y-%m-%d %H:%M}, in the "
                f"session after the week (opens {next_open:%Y-%m-%d %H:%M})"]
    return []
