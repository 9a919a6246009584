"""end_of_day_after_resume_sensor against real end-of-day runs: the simulated KIS refuses the run's
app key (the breaker goes PERMANENT_OPEN, the checks fail), a person resumes with the real
`stock-pipelines resume`, and the sensor asks for the day once more, once."""

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import pytest

from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, LakeResource, RedisResource
from stock_pipelines.defs.sensors.end_of_day_after_resume import end_of_day_after_resume_sensor
from stock_pipelines.defs.sensors.end_of_day_heal import HEAL_TAG
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.recovery.sources import breaker_for
from stock_pipelines.redis_conn import RedisSettings, configure, redis_client
from stock_pipelines.resilience.breaker import State
from stock_pipelines.resilience.flags import AUTO_RECOVERY, FeatureFlags
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines_tests.resilience.after_close import exchange_after_close
from stock_pipelines_tests.dagster_resources import resources

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DAY = date(2026, 11, 20)  # the simulator's day
EARLIER = date(2026, 11, 19)
SEED, SYMBOLS = 5, 6
KEYS = {f"ar-key-{n}": f"ar-secret-{n}" for n in range(4)}  # one app key a test: one token a minute
SCHEDULED = {"dagster/schedule_name": "end_of_day_schedule"}


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    with exchange_after_close(tmp_path_factory.mktemp("redis"), DAY, SEED, SYMBOLS, KEYS) as running:
        yield running


_keys = iter(KEYS)


@dataclass
class Refused:
    """DAY's end-of-day run failed because the broker refused its key; nobody has resumed yet."""

    instance: dg.DagsterInstance
    tmp_path: object
    url: str
    redis_url: str
    prefix: str
    key: str

    def resources(self, app_key: str, app_secret: str, **given) -> dict:
        bound = {
            "lake": LakeResource(data_dir=str(self.tmp_path / "data")),
            "archive": ArchiveResource(archive_dir=str(self.tmp_path / "archive")),
            "redis": RedisResource(url=self.redis_url, key_prefix=self.prefix),
            "broker": BrokerResource(broker="kis", base_url=self.url, app_key=app_key, app_secret=app_secret,
                                     token_dir=str(self.tmp_path / "data" / ".tokens")),
        }
        return resources(**{**bound, **given})

    def sensor(self, instance: dg.DagsterInstance | None = None):
        context = dg.build_sensor_context(
            instance=instance or self.instance,
            resources={"redis": RedisResource(url=self.redis_url, key_prefix=self.prefix),
                       "broker": BrokerResource(broker="kis")},
        )
        return end_of_day_after_resume_sensor(context)

    def resume(self) -> None:
        """The person's command, as typed (a real process on the same Redis)."""
        env = {**os.environ, "REDIS_URL": self.redis_url, "STOCK_PIPELINES_REDIS_PREFIX": self.prefix}
        done = subprocess.run(
            [sys.executable, "-m", "stock_pipelines.cli", "resume", "--reason", "new app key", "--by", "ops-kim"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr


def end_of_day(instance, day: date, res: dict, tags: dict[str, str]):
    from stock_pipelines.definitions import defs

    return defs.resolve_job_def("end_of_day_job").execute_in_process(
        instance=instance, partition_key=day.isoformat(), tags=tags, raise_on_error=False, resources=res
    )


@pytest.fixture
def refused(exchange, tmp_path, monkeypatch) -> Refused:
    url, redis = exchange
    session = krx_calendar().session(DAY)
    monkeypatch.setenv("STOCK_PIPELINES_FAKE_NOW", (session.close + timedelta(hours=1)).isoformat())
    monkeypatch.delenv("FEATURE_AUTO_RECOVERY_ENABLED", raising=False)
    configure(RedisSettings(url=redis.url, prefix=tmp_path.name))  # the test's own Redis calls
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage.parse("10:00-10:20", DAY)])
    state = Refused(dg.DagsterInstance.ephemeral(), tmp_path, url, redis.url, tmp_path.name, next(_keys))
    failed = end_of_day(state.instance, DAY, state.resources(state.key, "a-revoked-secret"), SCHEDULED)
    assert not failed.success
    breaker = breaker_for("kis", redis_client()).snapshot()
    assert breaker.state is State.PERMANENT_OPEN and breaker.reason.startswith("authorization failure")
    return state


def test_a_day_failed_on_refused_credentials_waits_for_a_person(refused):
    skip = refused.sensor()
    assert isinstance(skip, dg.SkipReason), skip
    assert skip.skip_message.startswith("kis credentials refused since ")
    assert f"the end of day of {DAY.isoformat()} runs again once a person resumes" in skip.skip_message


def test_after_the_resume_the_day_runs_again_once(refused):
    refused.resume()
    requests = refused.sensor()
    assert isinstance(requests, list) and len(requests) == 1, requests
    request = requests[0]
    resumed_at = breaker_for("kis", redis_client()).snapshot().changed_at
    assert request.partition_key == DAY.isoformat()
    assert request.run_key == f"end_of_day:resumed:{DAY.isoformat()}:kis:{resumed_at:.0f}"
    assert request.tags[HEAL_TAG] == "resumed"
    assert "resumed by ops-kim" in request.tags["stock_pipelines/reason"]

    # the daemon launches it (with the run key's tag); the person fixed the key
    tags = {**SCHEDULED, **request.tags, "dagster/run_key": request.run_key}
    rerun = end_of_day(refused.instance, DAY, refused.resources(refused.key, KEYS[refused.key]), tags)
    assert rerun.success
    assert rerun.asset_materializations_for_node("quality_report")[0].metadata["certified"].value is True
    again = refused.sensor()
    assert isinstance(again, dg.SkipReason), again
    assert again.skip_message.startswith("kis: no end-of-day run failed on the refusal of ")


def test_a_day_that_failed_for_another_cause_is_left_to_a_person(refused):
    # during the refusal another day's run fails in a step: its lake cannot be written (a file
    # stands where raw_ticks' folder goes)
    write_day_archive(refused.tmp_path / "archive", EARLIER, seed=SEED, symbols=SYMBOLS)
    lake_dir = refused.tmp_path / "other-lake"
    lake_dir.mkdir()
    (lake_dir / "raw_ticks").write_text("not a folder")
    other = dg.DagsterInstance.ephemeral()
    res = refused.resources(refused.key, KEYS[refused.key], lake=LakeResource(data_dir=str(lake_dir)))
    failed = end_of_day(other, EARLIER, res, SCHEDULED)
    assert not failed.success
    refused.resume()
    skip = refused.sensor(other)
    assert isinstance(skip, dg.SkipReason), skip
    assert skip.skip_message.endswith(f"left to a person (failed for another cause): {EARLIER.isoformat()}")


def test_no_rerun_while_automatic_recovery_is_off_or_dormant(refused):
    refused.resume()
    client = redis_client()
    FeatureFlags(client).set(AUTO_RECOVERY, False)
    off = refused.sensor()
    assert isinstance(off, dg.SkipReason) and off.skip_message == f"{DAY.isoformat()}: {AUTO_RECOVERY} is off"
    FeatureFlags(client).set(AUTO_RECOVERY, True)
    RecoveryGovernance(client).guard.enter("test: a person paused the automation", by="ops-kim")
    dormant = refused.sensor()
    assert isinstance(dormant, dg.SkipReason)
    assert dormant.skip_message.startswith(f"{DAY.isoformat()}: automatic recovery not allowed: dormant since")
    RecoveryGovernance(client).guard.resume("ops-kim", "done")
    assert len(refused.sensor()) == 1
