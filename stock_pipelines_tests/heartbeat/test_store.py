"""HeartbeatStore against a real Redis server; the archive system stream as the second source."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import redis

from stock_pipelines.archive.record import SystemRecord
from stock_pipelines.gaps import downtime_gaps
from stock_pipelines.heartbeat import (
    Heartbeat,
    HeartbeatPublisher,
    HeartbeatStore,
    LifecycleEvent,
    Snapshot,
    Status,
    history_from_system_lines,
    intervals_from_beats,
    up_intervals,
)
from stock_pipelines.heartbeat.model import to_us
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines_tests.waiting import wait_until

YESTERDAY = date(2026, 3, 5)


def seoul(day: date, hhmmss: str) -> datetime:
    h, m, s = ([int(p) for p in hhmmss.split(":")] + [0])[:3]
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=SEOUL)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def beat(collector: str, at: datetime, **kwargs) -> Heartbeat:
    return Heartbeat(collector=collector, host="host-a", pid=4242, started_at=seoul(YESTERDAY, "08:00"), at=at,
                     **kwargs)


def day_of_beats(start: str, end: str, every_s: float = 5.0) -> list[datetime]:
    times, t = [], seoul(YESTERDAY, start)
    while t <= seoul(YESTERDAY, end):
        times.append(t)
        t += timedelta(seconds=every_s)
    return times


def test_beats_keep_latest_state_and_a_compact_history(redis_server):
    client = redis_server.client()
    store = HeartbeatStore(client, clock=FakeClock(seoul(YESTERDAY, "16:00")))
    times = day_of_beats("08:00", "16:00")  # 5,761 beats
    for t in times:
        store.beat(beat("kis-1", t, symbols=("005930", "000660"), last_trade_at=t - timedelta(seconds=1)))
    latest = store.latest("kis-1")
    assert latest is not None and latest.at == seoul(YESTERDAY, "16:00") and latest.symbols == ("005930", "000660")
    assert latest.status is Status.OK and latest.pid == 4242 and latest.last_trade_at == times[-1] - timedelta(seconds=1)
    up_key = "sp:hb:kis-1:up:20260305"
    assert client.llen(up_key) == 1  # a whole day of beats is one interval, not 5,761 entries
    assert 13 * 86400 < client.ttl(up_key) <= 14 * 86400 and client.ttl("sp:hb:kis-1:latest") > 0
    assert store.up_intervals("kis-1", YESTERDAY) == intervals_from_beats(times)
    assert store.collectors() == {"kis-1": 0.0}


def test_stale_collectors_are_those_silent_for_three_of_their_own_intervals(redis_server):
    clock = FakeClock(seoul(YESTERDAY, "10:00"))
    store = HeartbeatStore(redis_server.client(), clock=clock)
    store.beat(beat("fast", seoul(YESTERDAY, "09:59:40"), interval_s=5))  # 20 s > 15 s: stale
    store.beat(beat("slow", seoul(YESTERDAY, "09:59:40"), interval_s=10))  # 20 s < 30 s: fine
    assert store.stale_collectors() == {"fast": 20.0}
    clock.now = seoul(YESTERDAY, "10:00:20")
    assert store.stale_collectors() == {"fast": 40.0, "slow": 40.0}


def test_collectors_are_pruned_by_the_project_clock_not_the_wall_clock(redis_server, monkeypatch):
    # the default clock, as the demo, the recovery asset and `collector` use it; set in the past
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(seoul(YESTERDAY, "10:00")))
    store = HeartbeatStore(redis_server.client())
    store.beat(beat("recent", seoul(YESTERDAY, "09:59:40")))
    store.beat(beat("old", seoul(YESTERDAY, "09:59:40") - timedelta(days=14)))  # past the 14-day TTL
    assert store.collectors() == {"recent": 20.0}
    assert redis_server.client().zrange("sp:hb:collectors", 0, -1) == ["recent"]  # "old" is gone for good


def test_redis_script_and_python_rule_agree_on_irregular_beats(redis_server):
    store = HeartbeatStore(redis_server.client())
    rng = random.Random(3)
    times, t = [], seoul(YESTERDAY, "09:00")
    for _ in range(1000):  # about 6 hours of beats, late by various amounts
        t += timedelta(seconds=rng.choice([5, 5, 5, 6, 9, 11, 30, 120]))
        times.append(t)
    for t in times:
        store.beat(beat("in-order", t))
    assert store.up_intervals("in-order", YESTERDAY) == intervals_from_beats(times)

    shuffled = times[:]
    for i in range(0, len(shuffled) - 4, 7):  # beats arrive out of order, some several places late
        j = i + rng.choice([1, 1, 2, 4])
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    for t in shuffled:
        store.beat(beat("reordered", t))
    from_redis = store.up_intervals("reordered", YESTERDAY)

    # the late beats land as entries of their own; reading merges them as time order would
    assert from_redis == intervals_from_beats(times)


def test_a_sensor_that_was_down_still_finds_yesterdays_outage(redis_server):
    store = HeartbeatStore(redis_server.client())
    for t in day_of_beats("08:30", "11:00") + day_of_beats("11:45", "15:40"):
        store.beat(beat("kis-1", t))
    # ... a day later, a fresh process asks about yesterday
    later = HeartbeatStore(redis_server.client(), clock=FakeClock(seoul(YESTERDAY, "23:00") + timedelta(days=1)))
    gaps = downtime_gaps(later.up_intervals("kis-1", YESTERDAY), YESTERDAY, collector="kis-1")
    assert [(g.start, g.end) for g in gaps] == [(seoul(YESTERDAY, "11:00"), seoul(YESTERDAY, "11:45"))]


def test_events_go_to_a_stream_a_reader_that_was_away_misses_nothing(redis_server):
    store = HeartbeatStore(redis_server.client(), clock=FakeClock(seoul(YESTERDAY, "09:00")))
    first = store.event("kis-1", LifecycleEvent.UP, detail={"shards": 3})
    events, cursor = store.read_events()
    assert [(e.id, e.event, e.collector, e.detail) for e in events] == [(first, LifecycleEvent.UP, "kis-1", {"shards": 3})]
    # the reader goes away; three events happen
    store.event("kis-1", "STALLED", seoul(YESTERDAY, "10:00"))
    store.event("kis-1", "DOWN", seoul(YESTERDAY, "10:01"))
    store.event("kiwoom-1", "UP", seoul(YESTERDAY, "10:02"))
    events, cursor = store.read_events(after=cursor)
    assert [(e.event.value, e.collector, e.at) for e in events] == [
        ("STALLED", "kis-1", seoul(YESTERDAY, "10:00")),
        ("DOWN", "kis-1", seoul(YESTERDAY, "10:01")),
        ("UP", "kiwoom-1", seoul(YESTERDAY, "10:02")),
    ]
    assert store.read_events(after=cursor) == ([], cursor)


def test_down_event_closes_the_interval(redis_server):
    store = HeartbeatStore(redis_server.client())
    for t in day_of_beats("09:00", "10:00"):
        store.beat(beat("kis-1", t))
    store.event("kis-1", "DOWN", seoul(YESTERDAY, "10:00:02"))
    store.beat(beat("kis-1", seoul(YESTERDAY, "10:00:06")))  # restarted 4 s later
    assert [(i.start, i.end) for i in store.up_intervals("kis-1", YESTERDAY)] == [
        (seoul(YESTERDAY, "09:00"), seoul(YESTERDAY, "10:00:02")),
        (seoul(YESTERDAY, "10:00:06"), seoul(YESTERDAY, "10:00:06")),
    ]


def system_lines(collector: str, times: list[datetime], down_at: datetime | None = None) -> list[str]:
    lines = [SystemRecord("UP", to_us(times[0]), collector).to_json_line()]
    lines += [SystemRecord("HEARTBEAT", to_us(t), collector, {"interval_s": 5}).to_json_line() for t in times]
    if down_at is not None:
        lines.append(SystemRecord("DOWN", to_us(down_at), collector).to_json_line())
    return lines


def test_when_redis_lost_its_data_the_archive_system_stream_rebuilds_the_same_history(redis_server, tmp_path):
    times = day_of_beats("08:30", "11:00") + day_of_beats("11:45", "15:40")
    client = redis_server.client()
    store = HeartbeatStore(client)
    for t in times:
        store.beat(beat("kis-1", t))
    from_redis = store.up_intervals("kis-1", YESTERDAY)

    system_dir = tmp_path / "kis-1" / "system"
    system_dir.mkdir(parents=True)
    lines = system_lines("kis-1", times)
    lines.insert(7, '{"v":1,"event":"HEART')  # a torn line
    lines.insert(9, SystemRecord("DISK_LOW", to_us(times[5]), "kis-1").to_json_line())
    lines.insert(11, '{"v":9,"event":"HEARTBEAT","at":1,"collector":"kis-1"}\n')
    (system_dir / "20260305.jsonl").write_text("".join(lines))

    assert up_intervals(store, tmp_path, "kis-1", YESTERDAY) == (from_redis, "redis")
    client.flushall()
    assert up_intervals(store, tmp_path, "kis-1", YESTERDAY) == (from_redis, "archive")
    redis_server.kill()
    assert up_intervals(HeartbeatStore(redis_server.client(socket_timeout=1)), tmp_path, "kis-1", YESTERDAY) == (
        from_redis, "archive")

    history = history_from_system_lines(lines, "kis-1")
    assert history.bad_lines == {"malformed_json": 1, "unknown_version": 1}
    assert history.other_events == 1 and history.beats == len(times) + 1
    assert up_intervals(None, tmp_path, "nobody", YESTERDAY) == ([], "none")


def test_archive_down_event_closes_an_interval_like_redis_does():
    times = day_of_beats("09:00", "10:00")
    lines = system_lines("kis-1", times, down_at=seoul(YESTERDAY, "10:00:02"))
    lines += system_lines("kis-1", [seoul(YESTERDAY, "10:00:06")])
    intervals = history_from_system_lines(lines, "kis-1").intervals
    assert [(i.start, i.end) for i in intervals] == [
        (seoul(YESTERDAY, "09:00"), seoul(YESTERDAY, "10:00:02")),
        (seoul(YESTERDAY, "10:00:06"), seoul(YESTERDAY, "10:00:06")),
    ]


@pytest.mark.clock  # beats are stamped by the project clock
def test_publisher_beats_on_its_own_and_survives_a_redis_outage(redis_server):
    client = redis_server.client(socket_timeout=0.5, socket_connect_timeout=0.5)
    store = HeartbeatStore(client)
    mirrored: list[Heartbeat] = []
    publisher = HeartbeatPublisher(
        store, "sim-1", lambda: Snapshot(("005930",), datetime.now(UTC)), interval_s=0.05, on_beat=mirrored.append
    )
    publisher.start()
    wait_until(lambda: store.latest("sim-1"), 5, "a beat in Redis")
    redis_server.kill()
    at_kill = len(mirrored)
    # beats fail, the thread keeps going (and reaching the archive mirror) through the outage
    wait_until(lambda: publisher.failures >= 2 and len(mirrored) >= at_kill + 2, 5, "two beats while Redis is down")
    redis_server.start()
    wait_until(lambda: store.latest("sim-1"), 5, "a beat in the restarted Redis")
    publisher.stop()
    latest = store.latest("sim-1")  # written after the restart (the restarted server is empty)
    assert latest is not None and latest.symbols == ("005930",) and latest.interval_s == 0.05
    events, _ = store.read_events()
    assert [e.event for e in events] == [LifecycleEvent.DOWN]  # UP was lost with the killed server's memory
    assert isinstance(client, redis.Redis)
