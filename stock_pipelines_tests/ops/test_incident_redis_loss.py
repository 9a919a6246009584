"""Redis coming back without the incident state (restarted without persistence, flushed) does not
strand an incident that already alerted: the evaluator's memory of the open incidents (the
incident sensor's cursor) adopts it again in the new store, so its resolution is still alerted,
once, whoever evaluates; without a loss the memory changes nothing."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from stock_pipelines.defs.alerting import AlertResource
from stock_pipelines.defs.resources import ArchiveResource, BrokerResource, RedisResource
from stock_pipelines.defs.sensors.incidents import incident_sensor
from stock_pipelines.heartbeat.model import Status
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.ops.incident_tick import incident_tick

from .test_incident_alerts import beat, collector_stalled, setup  # noqa: F401 - the fixture

STALLED = ("collector_stalled", "c1")


def lose_redis(s) -> None:
    s.client.flushdb()


def test_an_incident_lost_with_redis_still_resolves_once(setup):  # noqa: F811
    clear = collector_stalled(setup)
    remembered = setup.tick(1).remembered
    assert setup.receiver.events() == [("firing", *STALLED)]
    lose_redis(setup)
    clear()   # the collector beats ok into the new Redis
    result = incident_tick(setup.client, setup.sender, setup.now, remembered=remembered)
    assert result.adopted == [STALLED] and result.resolved == [STALLED]
    assert setup.receiver.events() == [("firing", *STALLED), ("resolved", *STALLED)]
    assert setup.receiver.bodies[1]["incident_id"] == setup.receiver.bodies[0]["incident_id"]
    # another evaluator remembering the same: nothing adopted twice, no second resolution
    again = incident_tick(setup.client, setup.sender, setup.now + timedelta(seconds=1), remembered=remembered)
    assert again.adopted == [] and len(setup.receiver.bodies) == 2


def test_an_incident_still_true_after_the_loss_stays_open_without_a_second_firing(setup):  # noqa: F811
    collector_stalled(setup)
    remembered = setup.tick(1).remembered
    lose_redis(setup)
    beat(setup, "c1", setup.now, Status.STALLED)
    result = incident_tick(setup.client, setup.sender, setup.now, remembered=remembered)
    assert result.adopted == [STALLED] and result.opened == [] and result.resolved == []
    assert setup.receiver.events() == [("firing", *STALLED)]
    assert [i["id"] for i in result.remembered["open"]] == [setup.receiver.bodies[0]["incident_id"]]


def test_without_a_loss_the_memory_adopts_nothing(setup):  # noqa: F811
    clear = collector_stalled(setup)
    remembered = setup.tick(1).remembered
    clear()
    setup.tick(1)   # resolved by an evaluator that remembers nothing
    result = incident_tick(setup.client, setup.sender, setup.now, remembered=remembered)
    assert result.adopted == [] and result.opened == []
    assert setup.receiver.events() == [("firing", *STALLED), ("resolved", *STALLED)]


def test_the_sensor_keeps_its_memory_in_its_cursor(setup, redis_server, monkeypatch, tmp_path):  # noqa: F811
    setup.now = setup.now.replace(hour=8)   # before the open: the (empty) archive is not judged
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.delenv("STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR", raising=False)
    monkeypatch.setenv("STOCK_PIPELINES_ALERT_WEBHOOK_URL", setup.receiver.url)
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(setup.now))
    bound = {"redis": RedisResource(), "alerts": AlertResource(broker=BrokerResource()),
             "archive": ArchiveResource()}
    clear = collector_stalled(setup)
    with dg.instance_for_test() as instance:

        def evaluate(cursor):
            with dg.build_sensor_context(instance=instance, resources=bound, cursor=cursor) as context:
                return incident_sensor(context)

        first = evaluate(None)
        lose_redis(setup)
        clear()
        second = evaluate(first.cursor)
    assert "adopted 1 lost with Redis" in second.skip_reason.skip_message
    assert setup.receiver.events() == [("firing", *STALLED), ("resolved", *STALLED)]

