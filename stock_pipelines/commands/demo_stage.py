"""The demo's first stage: the day, its services and its data.

The latest closed session (or `--date`), the simulated exchange's arguments, the Redis the demo
uses, and on the exchange's clock: the day's archive as a collector would have written it (with
the outages and corrupted lines), the demo's Redis namespace cleared, and the collector's
heartbeat trail with its restarts, beating on while the daemon watches.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

DEMO_CREDENTIALS = {"demo-app-key": "demo-app-secret"}  # the simulator accepts any pair; not a real broker's
DEFAULT_OUTAGES = ["10:00-10:25", "13:40-13:52"]
DEMO_COLLECTOR = "sim-kis-1"
CLOCK_START = (15, 28, 30)  # the fake "now" when the daemon starts
SEED_BEAT_S = 10
SENSOR = "collector_heartbeat_sensor"
NAMESPACE_SUFFIX = "-demo"  # the demo's Redis key prefix: the installation's prefix + this
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoDay:
    """What the replay demo plays: the day, what it lost, and where the clock starts."""

    day: date
    session: object  # market.Session
    outages: list  # sim.archive_day.Outage
    clock_start: datetime
    seed: int
    symbols: int
    corrupt: int

    def exchange_args(self) -> list[str]:
        """`sim exchange` arguments: this day and universe, pinned at the clock's start."""
        return ["--date", self.day.isoformat(), "--seed", str(self.seed), "--symbols", str(self.symbols),
                "--pin", "--start", f"{self.clock_start:%H:%M}"]


def latest_closed_session(now: datetime) -> date:
    from stock_pipelines.market import krx_calendar

    calendar = krx_calendar()
    day = now.date()
    session = calendar.session(day)
    if session is not None and now >= session.close:
        return day
    previous = calendar.previous_trading_day(day)
    assert previous is not None
    return previous


def demo_session(args: argparse.Namespace, now: datetime):
    """(day, session): `--date`, else the latest closed session at `now`; a UsageError if that is
    no trading day."""
    from stock_pipelines.commands import UsageError
    from stock_pipelines.commands.calendar import parse_day
    from stock_pipelines.market import krx_calendar

    day = parse_day(args.date) if args.date else latest_closed_session(now)
    session = krx_calendar().session(day)
    if session is None:
        raise UsageError(f"{day} is not a KRX trading day")
    return day, session


def demo_day(args: argparse.Namespace, day: date, session) -> DemoDay:
    from stock_pipelines.commands import UsageError
    from stock_pipelines.sim.archive_day import Outage

    try:
        outages = [Outage.parse(text, day) for text in (args.outage or DEFAULT_OUTAGES)]
    except ValueError as error:
        raise UsageError(str(error)) from None
    clock_start = session.close.replace(hour=CLOCK_START[0], minute=CLOCK_START[1], second=CLOCK_START[2])
    if session.close - clock_start < timedelta(minutes=1):
        clock_start = session.close - timedelta(seconds=90)
    return DemoDay(day, session, outages, clock_start, args.seed, args.symbols, args.corrupt)


def demo_prefix(installation_prefix: str) -> str:
    """The demo's own Redis key prefix, beside the installation's."""
    if installation_prefix.endswith(NAMESPACE_SUFFIX):
        return installation_prefix
    return installation_prefix + NAMESPACE_SUFFIX


def redis_for_demo(redis_url: str | None):
    """(client, the URL to give the daemon and its runs): `redis_url`, else the embedded server."""
    from stock_pipelines.redis_conn import describe_embedded, embedded_redis_url, key_prefix, redis_client

    redis = redis_client()
    redis.ping()
    namespace = f"keys under {key_prefix()}:"
    if redis_url:
        print(f"redis: REDIS_URL answering, {namespace}")
        return redis, redis_url
    url = embedded_redis_url()
    server = describe_embedded() or {}
    print(
        f"redis: embedded server pid {server.get('pid')} answering, {namespace}, "
        f"stops {server.get('stops')}"
    )
    return redis, url


def stage(demo: DemoDay, redis, instance, sim, archive_dir: Path, now):
    """Write the day's archive, clear the demo's earlier state and lay the collector's heartbeat
    trail up to `now()`; return the heartbeat publisher, started, that beats on for it."""
    from stock_pipelines.heartbeat import HeartbeatPublisher, HeartbeatStore, Snapshot
    from stock_pipelines.sim.archive_day import write_day_archive

    archived = write_day_archive(
        archive_dir,
        demo.day,
        seed=demo.seed,
        symbols=demo.symbols,
        collector=DEMO_COLLECTOR,
        outages=demo.outages,
        corrupt=demo.corrupt,
        sim=sim,
    )
    print(
        f"sim day: {archived.trades_written:,} of {archived.trades_total:,} trades archived "
        f"({archived.trades_missing:,} lost to outages {', '.join(a + '-' + b for a, b in archived.outages)}), "
        f"{len(archived.corrupt)} corrupted lines"
    )
    reset_demo_state(redis, instance, demo.day)
    seed_heartbeats(redis, demo.day, demo.session, demo.outages, now)
    publisher = HeartbeatPublisher(
        HeartbeatStore(redis), DEMO_COLLECTOR, lambda: Snapshot((), None), interval_s=5.0, clock=now
    )
    publisher.start()
    print(
        f"collector {DEMO_COLLECTOR}: heartbeats in Redis with {len(demo.outages)} restarts, beating on; "
        f"exchange clock at {demo.clock_start:%H:%M:%S}; starting the Dagster daemon"
    )
    return publisher


def seed_heartbeats(client, day: date, session, outages, now) -> None:
    """The collector's Redis trail for the day: up from 5 minutes before the open, down in each
    outage (an UP event when it came back), beating up to `now()`, read again until the trail
    has caught up (writing it takes seconds of the running fake clock; a hole left at its end
    would read as a third outage when the publisher's UP comes)."""
    from stock_pipelines.heartbeat import Heartbeat, HeartbeatStore
    from stock_pipelines.heartbeat.model import LifecycleEvent

    store = HeartbeatStore(client)
    started = session.open - timedelta(minutes=5)
    pieces, cursor = [], started
    for outage in sorted(outages, key=lambda o: o.start):
        pieces.append((cursor, outage.start))
        cursor = outage.end
    pieces.append((cursor, None))
    for index, (start, end) in enumerate(pieces):
        if index:
            store.event(DEMO_COLLECTOR, LifecycleEvent.UP, start)
        beat_at = start
        while beat_at < (end or now()):
            store.beat(Heartbeat(DEMO_COLLECTOR, "demo", 0, start, beat_at, (), None, interval_s=SEED_BEAT_S))
            beat_at += timedelta(seconds=SEED_BEAT_S)
        store.beat(Heartbeat(DEMO_COLLECTOR, "demo", 0, start, end or now(), (), None, interval_s=SEED_BEAT_S))


def reset_demo_state(client, instance, day: date) -> None:
    """Clear the demo's namespace (never the real one), its earlier runs of the day and its
    entry of the heartbeat sensor's cursor."""
    from stock_pipelines.ops.cursor_namespaces import with_cursor
    from stock_pipelines.redis_conn import key_prefix

    prefix = key_prefix()
    assert prefix.endswith(NAMESPACE_SUFFIX), f"the demo resets only its own namespace, not {prefix!r}"
    for name in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(name)
    import dagster as dg

    old = [
        *instance.get_run_records(
            dg.RunsFilter(tags={"dagster/sensor_name": SENSOR, "dagster/partition": day.isoformat()})
        ),
        *instance.get_run_records(
            dg.RunsFilter(tags={"stock_pipelines/demo": "true", "dagster/partition": day.isoformat()})
        ),
    ]
    for record in old:
        instance.delete_run(record.dagster_run.run_id)
    for state in instance.all_instigator_state():
        if state.name == SENSOR and state.instigator_data is not None:
            data = state.instigator_data
            instance.update_instigator_state(
                state.with_data(data._replace(cursor=with_cursor(data.cursor, prefix, None)))
            )
