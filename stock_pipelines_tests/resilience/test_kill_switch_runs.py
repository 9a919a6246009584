"""Kill switches and breakers stop what they say, counted at the simulated broker (real HTTP).

A run a schedule or a sensor launched (Dagster's own tags on it) calls no broker while
FEATURE_AUTO_RECOVERY_ENABLED is off or governance is dormant; a run a person launched still
calls, and its log says automation is off. The quality checks' calls go through the breaker.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import httpx
import pytest

from stock_pipelines.defs.broker_steps import launched_by
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, LakeResource, RedisResource
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.redis_conn import RedisSettings, configure, redis_client
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines_tests.resilience.after_close import exchange_after_close
from stock_pipelines_tests.dagster_resources import resources

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 5, 6
KEYS = {f"ks-key-{n}": f"ks-secret-{n}" for n in range(6)}  # one app key a test: one token a minute
FLAG_OFF = {"FEATURE_AUTO_RECOVERY_ENABLED": "false"}


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    with exchange_after_close(tmp_path_factory.mktemp("redis"), DAY, SEED, SYMBOLS, KEYS) as running:
        yield running


_keys = iter(KEYS)


@dataclass(frozen=True)
class Day:
    url: str  # the simulated broker's
    resources: dict  # this test's lake, archive, Redis (server and prefix) and broker


@pytest.fixture
def day(exchange, tmp_path, monkeypatch):
    """A day whose archive lost 10:00-10:20: recovering it needs the broker."""
    url, redis = exchange
    key = next(_keys)
    session = krx_calendar().session(DAY)
    monkeypatch.setenv("STOCK_PIPELINES_FAKE_NOW", (session.close + timedelta(hours=1)).isoformat())
    monkeypatch.delenv("FEATURE_AUTO_RECOVERY_ENABLED", raising=False)  # the deployment's kill switch
    # the test's own Redis calls go to the server and prefix the run's resource uses
    configure(RedisSettings(url=redis.url, prefix=tmp_path.name))
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage.parse("10:00-10:20", DAY)])
    return Day(str(url), resources(
        lake=LakeResource(data_dir=str(tmp_path / "data")),
        archive=ArchiveResource(archive_dir=str(tmp_path / "archive")),
        redis=RedisResource(url=redis.url, key_prefix=tmp_path.name),
        broker=BrokerResource(broker="kis", base_url=str(url), app_key=key, app_secret=KEYS[key],
                              token_dir=str(tmp_path / "data" / ".tokens")),
    ))


def broker_calls(url) -> int:
    """Every REST call the simulated exchange answered or refused, tokens included."""
    stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
    return sum(stats["calls"].values())


def run_end_of_day(day: Day, tags: dict[str, str]):
    from stock_pipelines.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("end_of_day_job")
    result = job.execute_in_process(instance=instance, partition_key=DAY.isoformat(), tags=tags,
                                    raise_on_error=False, resources=day.resources)
    return instance, result


def recovery_meta(result) -> dict:
    materialization = result.asset_materializations_for_node("recovered_minute_bars")[0]
    return {k: v.value for k, v in materialization.metadata.items()}


def check_meta(result, name: str) -> dict:
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == name)
    return {k: v.value for k, v in evaluation.metadata.items()}


def warnings_in_log(instance, result) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if "automation is off" in e.user_message]


SCHEDULED = dict(dg.DagsterRun.tags_for_schedule(dg.ScheduleDefinition(
    name="end_of_day_schedule", cron_schedule="*/10 15-17 * * 1-5", job_name="end_of_day_job")))


def test_a_scheduled_run_makes_no_broker_call_while_the_kill_switch_is_off(day, monkeypatch):
    monkeypatch.setenv("FEATURE_AUTO_RECOVERY_ENABLED", "false")
    before = broker_calls(day.url)
    instance, result = run_end_of_day(day, SCHEDULED)
    calls = broker_calls(day.url) - before
    print(f"a scheduled end-of-day run, kill switch off: {calls} calls at the broker")
    assert broker_calls(day.url) - before == 0

    recovery = recovery_meta(result)
    assert recovery["launched_by"] == "schedule end_of_day_schedule"
    assert recovery["windows_planned"] > 0 and recovery["windows_unrecovered"] == recovery["windows_planned"]
    assert recovery["calls"] == 0
    assert "automation is off (FEATURE_AUTO_RECOVERY_ENABLED off via env" in recovery["stopped"]
    volume = check_meta(result, "minute_bars_day_volume")
    assert volume["broker_checked"] is False and "automation is off" in volume["broker_day_volumes"]
    sample = check_meta(result, "minute_bars_match_broker")
    assert sample["sampled"] is False and "automation is off" in sample["sample"]
    assert warnings_in_log(instance, result)


def test_a_sensor_run_makes_no_broker_call_while_dormant(day):
    RecoveryGovernance(redis_client()).guard.enter("test: dormant", by="a test")
    tags = {"dagster/sensor_name": "end_of_day_heal_sensor", "stock_pipelines/heal": "tail"}
    before = broker_calls(day.url)
    _instance, result = run_end_of_day(day, tags)
    assert broker_calls(day.url) - before == 0
    recovery = recovery_meta(result)
    assert recovery["launched_by"] == "sensor end_of_day_heal_sensor"
    assert "dormant: test: dormant" in recovery["stopped"] and recovery["windows_unrecovered"] > 0


def test_a_run_a_person_launched_calls_the_broker_and_says_automation_is_off(day, monkeypatch):
    monkeypatch.setenv("FEATURE_AUTO_RECOVERY_ENABLED", "false")
    before = broker_calls(day.url)
    instance, result = run_end_of_day(day, {})
    calls = broker_calls(day.url) - before
    print(f"a person's end-of-day run, kill switch off: {calls} calls at the simulated broker")

    recovery = recovery_meta(result)
    assert recovery["launched_by"] == "a person"
    assert recovery["windows_unrecovered"] == 0 and recovery["rest_bars"] > 0
    volume = check_meta(result, "minute_bars_day_volume")
    sample = check_meta(result, "minute_bars_match_broker")
    assert volume["broker_checked"] is True and sample["sampled"] is True
    trades = {k: v.value for k, v in result.asset_materializations_for_node("recovered_trades")[0].metadata.items()}
    assert trades["launched_by"] == "a person" and trades["calls"] > 0  # the trade tier, after the bars
    # the simulator saw every call the steps report, and one token issue
    assert calls == recovery["calls"] + trades["calls"] + volume["broker_calls"] + sample["calls"] + 1
    logged = warnings_in_log(instance, result)
    assert logged and all("launched by a person, so it calls the broker anyway" in m for m in logged)


def test_the_quality_checks_calls_go_through_the_breaker(day):
    """A person's run with the broker's breaker open: no step calls the broker, the checks say why."""
    from stock_pipelines.recovery.sources import breaker_for

    client = redis_client()
    breaker_for("kis", client).trip_permanently("test: the broker refuses us")
    before = broker_calls(day.url)
    _instance, result = run_end_of_day(day, {})
    assert broker_calls(day.url) - before == 0
    volume = check_meta(result, "minute_bars_day_volume")
    assert volume["broker_calls"] > 0 and len(volume["broker_failed"]) == volume["broker_calls"]
    assert all("circuit breaker for kis is open" in f for f in volume["broker_failed"])
    sample = check_meta(result, "minute_bars_match_broker")
    failed = sample["failed_windows"]
    assert failed and all("circuit breaker for kis is open" in f for f in failed)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"dagster/schedule_name": "end_of_day_schedule"}, "schedule end_of_day_schedule"),
        ({"dagster/sensor_name": "collector_heartbeat_sensor"}, "sensor collector_heartbeat_sensor"),
        # the daemon's automatic retry of a scheduled run keeps its tags and adds a retry number
        ({"dagster/schedule_name": "s", "dagster/parent_run_id": "r1", "dagster/retry_number": "1"},
         "schedule s"),
        # a person re-executing a scheduled run from the UI (parent's tags copied, no retry number)
        ({"dagster/schedule_name": "s", "dagster/parent_run_id": "r1"}, None),
        ({"dagster/backfill": "abc"}, None),
        ({}, None),
    ],
)
def test_who_launched_a_run(tags, expected):
    assert launched_by(tags) == expected


def test_unreadable_redis_holds_automatic_runs_but_not_a_person(monkeypatch):
    import socket

    import redis

    from stock_pipelines.ops.automation import broker_permit

    monkeypatch.delenv("FEATURE_AUTO_RECOVERY_ENABLED", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    automatic = broker_permit(dead, "schedule end_of_day_schedule")
    assert not automatic.allowed and "off via redis_unreachable" in automatic.automation_off
    person = broker_permit(dead, None)
    assert person.allowed
    assert person.describe().endswith("launched by a person, so it calls the broker anyway")
