"""Real `stock-pipelines collector run` processes against `sim exchange`'s WebSocket, for the
end-to-end self-healing tests and the restart benchmark.

One timeline: the exchange's clock is set running at 1x from the session open and the project
clock (STOCK_PIPELINES_FAKE_NOW) is anchored to the same instant, so the collectors (on the
exchange's clock, `--clock exchange`), the daemon's sensors and the run workers agree on "now".
The expected bars come from the simulator's trade list (`truth.py`), not from the bars the
simulator's REST serves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import polars as pl

from stock_pipelines import lake
from stock_pipelines.collector.status import read_status
from stock_pipelines.defs.jobs.recovery import COLLECTOR_TAG
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value, parse_fake_now
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.dagster_dev import QUICK_RUN_QUEUE, REPO_ROOT, DagsterDev, dagster_dev
from stock_pipelines_tests.no_scheduler import INSTANCE_YAML as NO_SCHEDULER
from stock_pipelines_tests.truth import truth_bars
from stock_pipelines_tests.waiting import wait_until

DAY = date(2026, 11, 20)  # a Friday session, 09:00-15:30
OPEN = krx_calendar().session(DAY).open
APP_KEY, APP_SECRET = "e2e-key", "e2e-secret"
HEARTBEAT_S = 2  # wall seconds between beats: stale after 6 s
US = 1_000_000


@contextmanager
def exchange_at_the_open(seed: int, symbols: int) -> Iterator[tuple[str, str]]:
    """`sim exchange` for DAY with its clock running at 1x from the open; yields its URL and the
    STOCK_PIPELINES_FAKE_NOW value of the same timeline."""
    args = ["--date", DAY.isoformat(), "--seed", str(seed), "--symbols", str(symbols), "--pin",
            "--start", f"{OPEN:%H:%M}"]
    with run_exchange_process(args) as url:
        sent = time.time()
        httpx.post(f"{url}/admin/clock", json={"at": OPEN.isoformat(), "pinned": False, "speed": 1},
                   timeout=10).raise_for_status()
        yield url, fake_now_value(OPEN, (sent + time.time()) / 2)


def project_env(tmp_path: Path, url: str, redis_url: str, fake_now: str) -> dict[str, str]:
    """What the collectors, `dagster dev` and the CLI share."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "STOCK_PIPELINES_", "REDIS_URL"))}
    env.update({
        "REDIS_URL": redis_url,
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path / "data"),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(tmp_path / "archive"),
        "STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES": "1",
        "STOCK_PIPELINES_BROKER": "kis",
        "STOCK_PIPELINES_COLLECTOR_CLOCK": "exchange",
        "STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S": str(HEARTBEAT_S),
        "KIS_BASE_URL": str(url),
        "KIS_APP_KEY": APP_KEY,
        "KIS_APP_SECRET": APP_SECRET,
        ENV_FAKE_NOW: fake_now,
        # the test instance's scheduler (stock_pipelines_tests.no_scheduler) is loaded by dagster dev
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
    })
    return env


def project_now(env: dict[str, str]) -> datetime:
    return parse_fake_now(env[ENV_FAKE_NOW], time.time())


class CollectorProcess:
    """`stock-pipelines collector run --id <id> --symbols <codes>`; its log goes to a file."""

    def __init__(self, env: dict[str, str], collector_id: str, codes: list[str], log_dir: Path) -> None:
        self.id, self.codes = collector_id, codes
        self._log = (log_dir / f"collector-{collector_id}.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stock_pipelines.cli", "collector", "run", "--symbols", ",".join(codes),
             "--id", collector_id],
            env=env, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )

    def wait_streaming(self, redis_client, timeout: float = 90) -> None:
        """Its start line, then its Redis status until every shard is subscribed."""
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        assert line and line[0].strip(), f"collector {self.id} did not start (exit {self.process.poll()})"
        shards = json.loads(line[0])["shards"]
        wait_for(f"collector {self.id} to subscribe every shard",
                 lambda: (read_status(redis_client, self.id).get(self.id) or {}).get("connected") == shards,
                 timeout, every=0.2)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self.process.stdout.close()
        self._log.close()


def start_collectors(env: dict[str, str], redis_client, groups: dict[str, list[str]],
                     log_dir: Path) -> list[CollectorProcess]:
    started = [CollectorProcess(env, name, codes, log_dir) for name, codes in groups.items()]
    for collector in started:
        collector.wait_streaming(redis_client)
    return started


def wait_for(what: str, predicate, timeout: float, every: float = 0.5):
    return wait_until(predicate, timeout, what, every=every)


# -- Dagster ---------------------------------------------------------------------------------------

LOCATION = {"repositoryName": "__repository__", "repositoryLocationName": "stock_pipelines"}
SENSOR_TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { id status ticks(limit: 10) { status timestamp skipReason error { message } } } }
  }
}
"""
STOP_SENSOR = """mutation ($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""


def sensor_ticks(dev, name: str) -> list[dict]:
    data = dev.graphql(SENSOR_TICKS, {"selector": {**LOCATION, "sensorName": name}})
    return (data["sensorOrError"].get("sensorState") or {}).get("ticks") or []


def ticks_since(dev, name: str, since: float) -> list[dict]:
    """The sensor's evaluations (any outcome) that began after `since` (epoch seconds)."""
    return [t for t in sensor_ticks(dev, name) if t["timestamp"] >= since and t["status"] != "STARTED"]


def stop_sensor(dev, name: str) -> None:
    data = dev.graphql(SENSOR_TICKS, {"selector": {**LOCATION, "sensorName": name}})
    state = data["sensorOrError"]["sensorState"]
    if state["status"] != "RUNNING":
        return
    # the mutation writes the sensor's state while the daemon may be writing its ticks to the same
    # SQLite storage; on a loaded machine that can fail once (HTTP 500 naming a PythonError), so it
    # is asked again, and the third failure is reported with Dagster's message
    for attempt in range(3):
        try:
            stopped = dev.graphql(STOP_SENSOR, {"id": state["id"]})["stopSensor"]
            break
        except AssertionError:
            if attempt == 2:
                raise
            time.sleep(2)
    assert stopped["instigationState"]["status"] == "STOPPED", stopped


def runs_of(instance: dg.DagsterInstance, job: str, collectors: set[str] | None = None):
    """The job's run records, oldest first; only those launched for `collectors` when given."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job), order_by="create_timestamp", ascending=True)
    if collectors is None:
        return records
    return [r for r in records if r.dagster_run.tags.get(COLLECTOR_TAG) in collectors]


def finished(instance: dg.DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    done = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return run if run.status in done else None


HEARTBEAT_SENSOR = "collector_heartbeat_sensor"


@dataclass
class LiveDay:
    """DAY running at 1x from the open: `sim exchange`, Redis and `dagster dev` (webserver and
    daemon, no scheduler), shared by the tests of a module. Each test streams its own symbols with
    its own collector ids, and leaves its collectors running (`keep`) so no outage of one test
    launches runs in the next; they are killed when the day ends."""

    seed: int
    symbols: int
    url: str
    env: dict[str, str]
    dev: DagsterDev
    redis_client: object
    log_dir: Path
    kept: list[CollectorProcess] = field(default_factory=list)

    @property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dev.home))

    @property
    def data_dir(self) -> Path:
        return Path(self.env["STOCK_PIPELINES_DATA_DIR"])

    def codes(self) -> list[str]:
        return SimDay(DAY, seed=self.seed, symbols=self.symbols).codes

    def keep(self, collectors: list[CollectorProcess]) -> None:
        self.kept.extend(collectors)


@contextmanager
def live_day(tmp_path: Path, redis_server, seed: int, symbols: int) -> Iterator[LiveDay]:
    """Exchange, `dagster dev` (tick_archive_sensor stopped: it observes the wall clock's date,
    not DAY) and the heartbeat sensor's first evaluation, once for every test that shares it."""
    with exchange_at_the_open(seed, symbols) as (url, fake_now):
        env = project_env(tmp_path, url, redis_server.url, fake_now)
        day = None
        try:
            with dagster_dev(tmp_path, env=env, instance_yaml=NO_SCHEDULER + QUICK_RUN_QUEUE) as dev:
                stop_sensor(dev, "tick_archive_sensor")
                # the daemon is up and the heartbeat sensor evaluates (the code server loads slowly
                # on a loaded machine)
                since = time.time()
                wait_for("the heartbeat sensor's first evaluation",
                         lambda: ticks_since(dev, HEARTBEAT_SENSOR, since), 240, every=1)
                day = LiveDay(seed, symbols, url, env, dev, redis_server.client(), tmp_path)
                yield day
        finally:
            for collector in day.kept if day else []:
                collector.close()


# -- truth -----------------------------------------------------------------------------------------

def expected_bars(seed: int, symbols: int, first: datetime, last: datetime,
                  codes: list[str] | None = None) -> pl.DataFrame:
    """Minute bars [first, last] (minute starts) from the simulator's trade list (`truth.py`), in
    `stored_bars`' shape; only `codes`' when given."""
    lo, hi = int(first.timestamp()) * US, int(last.timestamp()) * US
    bars = truth_bars(SimDay(DAY, seed=seed, symbols=symbols))
    if codes is not None:
        bars = bars.filter(pl.col("symbol").is_in(codes))
    return (
        bars.with_columns(minute=pl.col("minute").dt.epoch("us"))
        .filter(pl.col("minute").is_between(lo, hi))
        .sort("symbol", "minute")
    )


def stored_bars(data_dir: Path, first: datetime, last: datetime) -> pl.DataFrame:
    """minute_bars of DAY for minutes [first, last], in `expected_bars`' shape (empty if none yet)."""
    if not lake.partition_exists("minute_bars", DAY, data_dir):
        return pl.DataFrame()
    bars = lake.read_partition("minute_bars", DAY, data_dir)
    lo, hi = int(first.timestamp()) * US, int(last.timestamp()) * US
    return (
        bars.with_columns(minute=pl.col("minute").dt.epoch("us"))
        .filter(pl.col("minute").is_between(lo, hi))
        .select("symbol", "minute", "open", "high", "low", "close", "volume", "source")
        .with_columns(pl.col(c).cast(pl.Int64) for c in ("minute", "open", "high", "low", "close", "volume"))
        .sort("symbol", "minute")
    )


def differences(expected: pl.DataFrame, stored: pl.DataFrame) -> list[str]:
    """Each expected bar that minute_bars lacks or has different; [] when all match."""
    if stored.is_empty():
        return [f"no minute_bars yet ({expected.height} bars expected)"]
    columns = ["open", "high", "low", "close", "volume"]
    joined = expected.join(stored, on=["symbol", "minute"], how="left", suffix="_got")
    bad = joined.filter(pl.any_horizontal(pl.col(f"{c}_got").is_null() | (pl.col(c) != pl.col(f"{c}_got"))
                                          for c in columns))
    return [
        f"{row['symbol']} {datetime.fromtimestamp(row['minute'] / US, SEOUL):%H:%M}: "
        f"want {[row[c] for c in columns]}, got {[row[c + '_got'] for c in columns]} ({row['source']})"
        for row in bad.iter_rows(named=True)
    ]


def minute_floor(at: datetime) -> datetime:
    return at.astimezone(SEOUL).replace(second=0, microsecond=0)


def last_closed_minute(at: datetime) -> datetime:
    return minute_floor(at) - timedelta(minutes=1)
