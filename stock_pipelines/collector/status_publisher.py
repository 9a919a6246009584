"""What a running collector publishes about itself, from a thread of its own: heartbeats stamped
at what is durable, a HEARTBEAT system line with each, and the status hash in Redis."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

import redis

from stock_pipelines.archive.writer import ArchiveWriter, DiskSpaceLow
from stock_pipelines.collector import status as status_store
from stock_pipelines.collector.clock import SystemClock
from stock_pipelines.collector.config import CollectorSettings, FeedSource
from stock_pipelines.collector.failover import Failover
from stock_pipelines.collector.journal import Journal
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.collector.policy import SourceSelector
from stock_pipelines.collector.shard_state import ShardState
from stock_pipelines.heartbeat.model import Heartbeat, LifecycleEvent, Status
from stock_pipelines.heartbeat.publisher import HeartbeatPublisher, Snapshot
from stock_pipelines.heartbeat.store import HeartbeatStore

log = logging.getLogger(__name__)


class Reporting(Protocol):
    """What the collector shows of itself to its status publisher."""

    id: str
    symbols: list[str]
    shards: list[ShardState]
    state: str
    status: Status
    reconnects: int
    stalls: int
    link_failures: dict[str, int]
    pipeline: Pipeline
    writer: ArchiveWriter
    selector: SourceSelector
    sources: dict[str, FeedSource]
    clock: SystemClock
    settings: CollectorSettings
    hot: bool
    failover: Failover

    def fatal_error_threadsafe(self, message: str) -> None: ...


class StatusPublisher:
    def __init__(self, collector: Reporting, store: HeartbeatStore, redis_client: redis.Redis,
                 journal: Journal) -> None:
        self.collector = collector
        self.store = store
        self.redis = redis_client
        self.journal = journal
        self._vouch_limit: datetime | None = None  # set once the sessions start closing
        self.heartbeats = HeartbeatPublisher(store, collector.id, self._snapshot,
                                             interval_s=self._interval_s(),
                                             clock=self.durable_now, on_beat=self._on_beat)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_beat_monotonic: float | None = None  # for the heartbeat age in /metrics

    def _interval_s(self) -> float:
        """Heartbeat spacing on the collector's clock: `heartbeat_wall_s` wall seconds, at the speed
        the clock runs at (a pinned exchange clock included: see `ExchangeClock.running_rate`)."""
        return self.collector.settings.heartbeat_wall_s * max(self.collector.clock.running_rate, 1.0)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, detail: dict) -> None:
        """The UP lifecycle event (with the beats' start, see `durable_now`), then beat until `stop`."""
        collector = self.collector
        self.journal.redis_call(self.store.event, collector.id, LifecycleEvent.UP, collector.clock.now_dt(),
                                {**detail, **self.heartbeats.up_detail()})
        self._thread = threading.Thread(target=self._beat_loop, name=f"collector-beat-{collector.id}",
                                        daemon=True)
        self._thread.start()

    def sessions_closing(self) -> None:
        """Called before the feed's sessions close: no later beat (the final one included) nor the
        DOWN event vouches past what is durable now, while the feed is still connected. Closing
        the sessions and stopping take wall time, which at a high clock rate is minutes of
        exchange time the archive will never hold."""
        self._vouch_limit = self.durable_now()

    def stop_beating(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def last_word(self, reason: str) -> None:
        """The final heartbeat (the collector's status and state as they are now), the DOWN
        lifecycle event that closes the up-interval, and the final status hash."""
        self.heartbeats.beat_once()
        self.heartbeats.stop(reason=reason)
        self.publish_status()

    def _beat_loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeats.interval_s = self._interval_s()
            self.heartbeats.beat_once()
            self.publish_status()
            self._stop.wait(self.collector.settings.heartbeat_wall_s)

    # -- heartbeats --------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        collector = self.collector
        last = collector.pipeline.last_trade_ts
        last_at = datetime.fromtimestamp(last / 1e6, UTC) if last else None
        return Snapshot(tuple(collector.symbols), last_at, collector.status)

    def durable_now(self) -> datetime:
        """The instant a beat vouches for: everything executed before it is archived.

        A beat is stamped `durability_margin_s` (wall, converted to exchange time) in the past and
        the writer is flushed before the beat is sent, so a trade still in flight (feed latency,
        socket buffers, the pipeline) when the process is killed lies after the last beat: inside
        the downtime the gap machinery recovers, never in a minute it believes was covered.
        The first beat is therefore stamped before the UP event; the publisher keeps every beat at
        or after its start time, which the UP event announces (`HeartbeatPublisher.up_detail`).
        """
        clock = self.collector.clock
        now = clock.now()
        margin = self.collector.settings.durability_margin_s * clock.rate
        durable = datetime.fromtimestamp(now - max(margin, self.lag_s(now) + 1.0), UTC)
        return durable if self._vouch_limit is None else min(durable, self._vouch_limit)

    def lag_s(self, now: float | None = None) -> float:
        """How far behind the exchange the pipeline is (exchange seconds): the largest lag a shard
        measured in the last wall second (a shard idle longer than that has nothing queued)."""
        clock = self.collector.clock
        now = clock.now() if now is None else now
        recent = max(1.0, clock.rate)
        lags = [s.lag_s for s in self.collector.shards if now - s.lag_at <= recent]
        return max(lags, default=0.0)

    def _on_beat(self, hb: Heartbeat) -> None:
        collector = self.collector
        self.last_beat_monotonic = time.monotonic()
        try:
            collector.writer.flush(fsync=True)
        except DiskSpaceLow:
            pass  # counted by the pipeline; the writer retries the kept lines
        except OSError as error:
            collector.fatal_error_threadsafe(f"archive write failed: {error}")
            return
        try:
            collector.writer.write_system("HEARTBEAT", {
                "seq": collector.pipeline.seq, "interval_s": hb.interval_s, "status": hb.status.value,
                "state": collector.state, "durable_until_us": int(hb.at.timestamp() * 1_000_000),
                "source": collector.selector.name, "broker": self.broker(), "connected": self.connected(),
                **self.standby_fields(),
                "counters": collector.pipeline.counters.as_dict(),
            })
        except OSError as error:
            log.warning("collector %s: heartbeat line not archived: %s", collector.id, error)

    # -- the status hash ---------------------------------------------------------------------

    def broker(self) -> str:
        """The broker of the active feed (kis or kiwoom)."""
        return self.collector.sources[self.collector.selector.name].broker

    def connected(self) -> int:
        """Shards with a subscribed session on the active source."""
        active = self.collector.selector.name
        return sum(1 for s in self.collector.shards if active in s.connected)

    def standby_fields(self) -> dict[str, object]:
        """The hot standby: its source and broker, the shards it has subscribed, and whether it is
        live (every shard); `standby` is hot, cold (connected on the primary's first failure) or none."""
        collector = self.collector
        if len(collector.sources) < 2:
            return {"standby": "none"}
        if not collector.hot:
            return {"standby": "cold"}
        name = collector.failover.standby_source()
        return {"standby": "hot", "standby_source": name, "standby_broker": collector.sources[name].broker,
                "standby_connected": collector.failover.standby_connected(),
                "standby_live": collector.failover.standby_live()}

    def status_fields(self) -> dict[str, object]:
        collector = self.collector
        return {
            "state": collector.state, "status": collector.status.value, "source": collector.selector.name,
            "broker": self.broker(),
            "failover": "on_secondary" if collector.selector.on_secondary else "primary",
            "at_us": int(collector.clock.now() * 1_000_000), "symbols": len(collector.symbols),
            "shards": len(collector.shards), "connected": self.connected(), "seq": collector.pipeline.seq,
            "counters": collector.pipeline.counters.as_dict(),
            "switches": len(collector.selector.switches), "reconnects": collector.reconnects,
            "stalls": collector.stalls, "lag_s": round(self.lag_s(), 3),
            "link_failures": collector.link_failures,
            "disk_low": collector.writer.disk_low,  # below the disk floor: the incident sensor alerts
            **self.standby_fields(),
        }

    def publish_status(self) -> None:
        self.journal.redis_call(status_store.write_status, self.redis, self.collector.id,
                                self.status_fields())
