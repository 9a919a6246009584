"""The collector process: shards of broker WebSocket sessions (KIS H0STCNT0 or Kiwoom 0B, see
`feeds`) -> pipeline -> archive, with a stall watchdog, reconnects with backoff and a clean stop.

One asyncio loop owns the connections and the pipeline; `status_publisher` beats from a thread of
its own and `failover` switches sources. Every decision (connect now? stalled? which source?) is
asked of `policy.py`, on the collector's `Clock`. System-stream events of the collector (besides
the writer's own): UP, DOWN, IDLE, STALLED, DISCONNECTED, LOSS_WINDOW, SUBSCRIBE_ERROR here;
HEARTBEAT (`status_publisher`); STANDBY, STANDBY_RELEASED, STANDBY_DOWN, STANDBY_LIVE, FAILOVER,
FAILBACK, PROBE (`failover`);
BAD_FRAME (`pipeline`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from stock_pipelines.archive.writer import ArchiveWriteError, ArchiveWriter, DiskSpaceLow, WriterPolicy
from stock_pipelines.collector.clock import SystemClock
from stock_pipelines.collector.config import AppKey, CollectorSettings, FeedSource, shard
from stock_pipelines.collector.failover import Failover
from stock_pipelines.collector.feeds import ACK, BAD, DATA, PING, REFUSED, Feed, Feeds, Incoming
from stock_pipelines.collector.journal import Journal
from stock_pipelines.collector.kis_session import LinkError, open_session
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.collector.policy import MarketWindow, SourceSelector, StallWatchdog
from stock_pipelines.collector.shard_state import ShardState
from stock_pipelines.collector.status_publisher import StatusPublisher
from stock_pipelines.heartbeat import HeartbeatStore, LifecycleEvent, Status
from stock_pipelines.market import krx_calendar
from stock_pipelines.resilience.backoff import Backoff

log = logging.getLogger(__name__)

TICK_S = 0.05  # wall seconds between supervisor passes (writer flush, watchdog, window)


class Collector:
    def __init__(
        self,
        collector_id: str,
        symbols: list[str],
        sources: list[FeedSource],
        archive_root: Path,
        redis_client: redis.Redis,
        settings: CollectorSettings | None = None,
        clock: SystemClock | None = None,
        fallback_root: Path | None = None,
        min_free_bytes: int = 256 * 1024 * 1024,
        token_dir: Path | None = None,
    ) -> None:
        if not sources:
            raise ValueError("a collector needs at least one feed source")
        self.id = collector_id
        self.symbols = list(symbols)
        self.sources = {source.name: source for source in sources}
        self.settings = settings = settings or CollectorSettings()
        self.clock = clock or SystemClock()
        self.redis = redis_client
        rate = max(self.clock.rate, 1.0)  # the writer's intervals run on the collector's clock
        policy = WriterPolicy(
            flush_interval_s=settings.flush_interval_s * rate,
            fsync_interval_s=settings.fsync_interval_s * rate,
            min_free_bytes=min_free_bytes, disk_check_interval_s=1.0 * rate,
        )
        self.writer = ArchiveWriter(archive_root, collector_id, policy, fallback_root=fallback_root,
                                    clock=self.clock.now)
        self.pipeline = Pipeline(self.writer, "kis", lambda: int(self.clock.now() * 1_000_000))
        self.store = HeartbeatStore(redis_client, clock=self.clock.now_dt)
        self.shards = [ShardState(s) for s in shard(self.symbols, settings.max_subscriptions)]
        self.selector = SourceSelector([s.name for s in sources], settings.failover_after)
        self.window = MarketWindow(krx_calendar(), timedelta(minutes=settings.prime_minutes),
                                   timedelta(minutes=settings.linger_minutes))
        self.watchdog = StallWatchdog(self.window, settings.stall_minutes * 60)
        self.backoff = Backoff(settings.backoff_base_s, max(settings.backoff_cap_s, settings.backoff_base_s))
        self.state = "starting"
        self.fatal: str | None = None  # why the collector stopped itself (archive unwritable)
        self.status = Status.STARTING
        self.journal = Journal(collector_id, self.writer)
        self.events = self.journal.events  # the collector's own system events, for tests and the demo summary
        self.link_failures: dict[str, int] = {}
        self.standby = False  # the secondary's sessions run beside a failing primary's (cold standby)
        # hot standby: every source streams all the time, the guard keeps each trade once
        self.hot = settings.standby == "hot" and len(sources) > 1
        self.reconnects = 0
        self.stalls = 0
        self._links: dict[tuple[str, int], asyncio.Task] = {}
        self.feeds = Feeds(token_dir)
        self.reporting = StatusPublisher(self, self.store, redis_client, self.journal)
        self.publisher = self.reporting.heartbeats
        self.failover = Failover(collector_id, self.sources, self.selector, self.shards, self, self.feeds,
                                 self.journal, redis_client, settings, self.clock, self.window)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop or asyncio.Event()
        self.feeds.open(self.settings.connect_timeout_s)
        detail = {"symbols": len(self.symbols), "shards": len(self.shards), "sources": list(self.sources)}
        self.journal.event("UP", detail)
        self.reporting.start(detail)
        try:
            await self._supervise()
        finally:
            self.state = "stopping"
            self.reporting.sessions_closing()
            for task in self.failover.tasks():
                task.cancel()
            await self.stop_links(list(self._links))
            await self.feeds.aclose()
            self.reporting.stop_beating()
            self.status = Status.STOPPING
            self.state = "stopped"
            reason = "stopped" if self.fatal is None else "archive_error"
            self.reporting.last_word(reason)  # final heartbeat (stopping, stopped), DOWN, status hash
            try:
                self.journal.event("DOWN", {"reason": reason, "status": "stopped", "error": self.fatal,
                                            "seq": self.pipeline.seq,
                                            "counters": self.pipeline.counters.as_dict()})
                self.writer.close()  # flush and fsync
            except OSError as error:
                if self.fatal is None:
                    raise
                log.error("collector %s: could not close the archive: %s", self.id, error)

    def _fatal_error(self, message: str) -> None:
        """The archive cannot be written: stop (exit 1) rather than beat while trades are lost, so the
        heartbeats end and the gap machinery sees the downtime."""
        if self.fatal is None:
            self.fatal = message
            log.error("collector %s: %s; stopping", self.id, message)
        if self._stop is not None:
            self._stop.set()

    def fatal_error_threadsafe(self, message: str) -> None:
        """`_fatal_error` from another thread (the heartbeat thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fatal_error, message)

    def request_stop(self) -> None:
        """Thread-safe: ask a running collector to stop gracefully."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def _supervise(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                self.writer.tick()
            except DiskSpaceLow:
                pass  # the kept lines are retried on the next tick
            except OSError as error:
                self._fatal_error(f"archive write failed: {error}")
                break
            now = self.clock.now()
            if self.window.should_connect(now):
                self.ensure_links()
                if self.state != "connected":
                    self.state = "connected"
                    self.watchdog.reset(now)
                silent = self.watchdog.check(now)
                if silent is not None:
                    await self._stalled(silent)
                else:
                    await self.failover.check_sources(now)
                self.failover.watch_standby()
                self.failover.maybe_probe()
            elif self._links:
                self._go_idle()  # at once: closing the sessions can take their close timeout
                await self.stop_links(list(self._links))
                self.journal.event("IDLE", {"reason": "outside the trading window", "next_connect": _iso(
                    self.window.next_connect(now))})
            else:
                self._go_idle()
            try:
                await asyncio.wait_for(self._stop.wait(), TICK_S)
            except TimeoutError:
                pass

    def _go_idle(self) -> None:
        """Outside the trading window nothing is connected, so nothing can be stalled: a stall
        still declared at the close ends here (only trades would clear it, and none come until
        the next session), else every beat of the night would report a quiet feed."""
        self.state = "idle"
        if self.status is Status.STALLED:
            self.status = Status.OK

    # -- links (one WebSocket session a shard) -----------------------------------------------------

    def ensure_links(self) -> None:
        """A running session for every shard on the active source (and on the secondary while it
        stands by beside a failing primary, see `failover.stand_by`)."""
        names = [self.selector.name]
        if self.hot:
            names = list(self.selector.sources)
        elif self.standby and not self.selector.on_secondary:
            names.append(self.selector.sources[1])
        for name in names:
            for index in range(len(self.shards)):
                task = self._links.get((name, index))
                if task is None or task.done():
                    self._links[(name, index)] = asyncio.create_task(self._link(self.sources[name], index))

    async def stop_links(self, keys: list[tuple[str, int]]) -> None:
        tasks = [self._links.pop(k) for k in keys if k in self._links]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for k in keys:
            self.shards[k[1]].connected.discard(k[0])

    async def _link(self, source: FeedSource, index: int) -> None:
        """Connect, log in, subscribe, stream; on failure record it, back off (wall seconds) and retry."""
        state = self.shards[index]
        feed = self.feeds.of(source)
        attempt = 0
        key = source.keys[index % len(source.keys)]
        while True:
            healthy = False
            try:
                credential = await feed.credential(source, key)
                async with open_session(source, self.settings.connect_timeout_s) as ws:
                    async with asyncio.timeout(self.settings.connect_timeout_s):
                        await feed.start(ws, credential)
                    await self._subscribe(ws, feed, source, key, index, credential)
                    state.connected.add(source.name)
                    state.first_ts.pop(source.name, None)
                    self.watchdog.reset(self.clock.now())
                    self.failover.source_subscribed(source.name, self.clock.now())
                    async for message in ws:
                        if await self._handle(ws, message, feed, source, index):
                            healthy = True
                            attempt = 0
                raise LinkError("closed", f"server closed the session (code {ws.close_code})")
            except asyncio.CancelledError:
                state.connected.discard(source.name)
                raise
            except ArchiveWriteError as error:
                if not isinstance(error, DiskSpaceLow):
                    state.connected.discard(source.name)
                    self._fatal_error(f"archive write failed: {error}")
                    return
                failure = LinkError("disk_low", str(error)[:200])
            except ConnectionClosed as error:
                failure = LinkError("dropped", f"code {error.rcvd.code if error.rcvd else 'none'}")
            except LinkError as error:
                if error.reason == "unauthorized":
                    feed.forget(source, key)
                failure = error
            except (OSError, TimeoutError, WebSocketException, httpx.HTTPError) as error:
                failure = LinkError("connect", f"{type(error).__name__}: {error}"[:200])
            except Exception as error:  # a bug must not become a reconnect storm: back off like any failure
                log.exception("collector %s: unexpected error in session %s/%d", self.id, source.name, index)
                failure = LinkError("internal", f"{type(error).__name__}: {error}"[:200])
            state.connected.discard(source.name)
            self._link_failed(source, index, failure, healthy)
            delay = self.backoff.delay(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _subscribe(self, ws: ClientConnection, feed: Feed, source: FeedSource, key: AppKey, index: int,
                         credential: str) -> None:
        symbols = self.shards[index].symbols
        for text in feed.subscribe_messages(credential, symbols):
            await ws.send(text)
        waiting = set(symbols)
        async with asyncio.timeout(self.settings.connect_timeout_s):
            while waiting:
                message = await ws.recv()
                if isinstance(message, bytes):
                    message = message.decode("utf-8", errors="replace")
                incoming = feed.read(message)
                if incoming.kind in (DATA, BAD):
                    await self._handle(ws, message, feed, source, index)
                elif incoming.kind == PING:
                    await self._pong(ws, message)
                elif incoming.kind == ACK:
                    self.pipeline.counters.control_in += 1
                    waiting.difference_update(symbols if incoming.symbols is None else incoming.symbols)
                elif incoming.kind == REFUSED:
                    self.pipeline.counters.control_in += 1
                    if incoming.credential_refused:
                        feed.forget(source, key)
                    self._subscribe_error(source, index, incoming)
                    raise LinkError("subscribe", f"{incoming.symbol or source.broker}: {incoming.code} "
                                                 f"{incoming.text}")
                else:
                    self.pipeline.counters.control_in += 1

    def _subscribe_error(self, source: FeedSource, index: int, incoming: Incoming) -> None:
        self.journal.event("SUBSCRIBE_ERROR", {"source": source.name, "broker": source.broker, "shard": index,
                                               "symbol": incoming.symbol, "msg_cd": incoming.code,
                                               "msg1": incoming.text})

    async def _handle(
        self, ws: ClientConnection, message: str | bytes, feed: Feed, source: FeedSource, index: int,
    ) -> bool:
        """One message; True when it carried trades (archived, or already delivered by the other feed)."""
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        incoming = feed.read(message)
        if incoming.kind in (DATA, BAD):  # a bad message goes through the pipeline to be counted
            parsed_before = self.pipeline.counters.records_in
            records = self.pipeline.receive(message, feed.decoder(self.clock.now()), source.broker)
            delivered = self.pipeline.counters.records_in > parsed_before
            if delivered:  # the feed is alive even when the other one was first with every trade
                self._source_delivered(source)
            if records:
                self._on_trades(source, index, min(r.ts for r in records), max(r.ts for r in records))
            return delivered
        if incoming.kind == PING:
            await self._pong(ws, message)
            return False
        self.pipeline.counters.control_in += 1
        if incoming.kind == REFUSED:
            self._subscribe_error(source, index, incoming)
        return False

    async def _pong(self, ws: ClientConnection, message: str) -> None:
        self.pipeline.counters.pingpong += 1
        await ws.send(message)  # both brokers expect their ping echoed as received

    def _source_delivered(self, source: FeedSource) -> None:
        self.failover.source_alive(source.name, self.clock.now())
        if source.name == self.selector.name:
            self.selector.success()
            if self.standby:
                self.failover.primary_recovered()
        elif self.hot and source.name == self.selector.sources[0]:
            self.failover.primary_delivers()

    def _on_trades(self, source: FeedSource, index: int, first_ts: int, last_ts: int) -> None:
        now = self.clock.now()
        self.watchdog.reset(now)
        if self.status is not Status.OK:
            self.status = Status.OK
        state = self.shards[index]
        if state.pending is not None:
            pending, state.pending = state.pending, None
            detail = {**pending, "shard": index, "symbols": len(state.symbols),
                      "symbol_list": list(state.symbols), "source": source.name,
                      "from_us": state.last_ts if state.last_ts is not None else pending["down_at_us"],
                      "to_us": first_ts, "up_at_us": int(now * 1_000_000)}
            self.journal.event("LOSS_WINDOW", detail)
        if state.last_ts is None or last_ts > state.last_ts:
            state.last_ts = last_ts
        state.first_ts.setdefault(source.name, first_ts)
        state.last_by_source[source.name] = max(state.last_by_source.get(source.name, last_ts), last_ts)
        state.lag_s, state.lag_at = max(0.0, now - last_ts / 1_000_000), now

    def _link_failed(self, source: FeedSource, index: int, error: LinkError, was_healthy: bool) -> None:
        now = self.clock.now()
        self.link_failures[error.reason] = self.link_failures.get(error.reason, 0) + 1
        self.reconnects += 1
        state = self.shards[index]
        if state.pending is None and not state.connected:
            state.pending = {"reason": error.reason, "down_at_us": int(now * 1_000_000)}
        self.journal.event("DISCONNECTED", {"source": source.name, "shard": index, "reason": error.reason,
                                            "error": str(error)[:300], "was_streaming": was_healthy})
        if source.name == self.selector.name:
            switch = self.selector.failure(now, error.reason)
            if switch is not None:
                self.failover.switched(switch)
            elif not self.hot:
                self.failover.stand_by(error.reason)

    async def _stalled(self, silent_s: float) -> None:
        self.stalls += 1
        self.status = Status.STALLED
        now = self.clock.now()
        detail = {"silent_s": round(silent_s, 1), "source": self.selector.name,
                  "limit_s": self.settings.stall_minutes * 60}
        self.journal.event("STALLED", detail)
        self.journal.redis_call(self.store.event, self.id, LifecycleEvent.STALLED, self.clock.now_dt(),
                                detail)
        stalled_source = self.selector.name
        self.failover.restart_watches(now)  # the whole feed is silent: not one source alone
        for state in self.shards:
            if state.pending is None:
                state.pending = {"reason": "stalled", "down_at_us": int(now * 1_000_000)}
        switch = self.selector.failure(now, "stalled")
        if switch is not None:
            self.failover.switched(switch)
        elif not self.hot:
            self.failover.stand_by("stalled")
        # Reconnect the stalled source's sessions (a new session is a new feed at the exchange).
        await self.stop_links([k for k in self._links if k[0] == stalled_source])
        self.ensure_links()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
