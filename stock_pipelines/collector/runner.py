"""The collector process: shards of KIS H0STCNT0 WebSocket sessions -> pipeline -> archive, with
heartbeats, a stall watchdog, reconnects with backoff, failover / failback and a clean stop.

One asyncio loop owns the connections and the pipeline; one thread beats. Every decision
(connect now? stalled? which source?) is asked of `policy.py`, on the collector's `Clock`.
System-stream events written here (besides the writer's own): UP, DOWN, HEARTBEAT, STALLED,
DISCONNECTED, LOSS_WINDOW, FAILOVER, FAILBACK, SUBSCRIBE_ERROR, BAD_FRAME (pipeline).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from stock_pipelines.archive.writer import ArchiveWriteError, ArchiveWriter, DiskSpaceLow, WriterPolicy
from stock_pipelines.collector import status as status_store
from stock_pipelines.collector.clock import SystemClock
from stock_pipelines.collector.config import AppKey, CollectorSettings, FeedSource, shard
from stock_pipelines.collector.frames import is_data
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.collector.policy import MarketWindow, SourceSelector, StallWatchdog, Switch
from stock_pipelines.heartbeat import (
    Heartbeat,
    HeartbeatPublisher,
    HeartbeatStore,
    LifecycleEvent,
    Snapshot,
    Status,
)
from stock_pipelines.market import krx_calendar
from stock_pipelines.resilience.backoff import Backoff

log = logging.getLogger(__name__)

TICK_S = 0.05  # wall seconds between supervisor passes (writer flush, watchdog, window)
_OK_CODES = ("OPSP0000", "OPSP0002")  # subscribed, already subscribed


class LinkError(Exception):
    """A connection failed in a way worth a reconnect; `reason` is a short label for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class _ShardState:
    symbols: tuple[str, ...]
    last_ts: int | None = None  # newest execution time received for this shard's symbols
    pending: dict | None = None  # an open loss window, closed by the next trade
    first_ts: dict = field(default_factory=dict)  # source -> first trade time since its last subscribe
    last_by_source: dict = field(default_factory=dict)  # source -> newest trade time it delivered
    lag_s: float = 0.0  # receive time minus execution time of its newest trade, last time data came
    lag_at: float = 0.0  # clock time of that measurement
    connected: set = field(default_factory=set)  # sources with a subscribed link


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
        self.shards = [_ShardState(s) for s in shard(self.symbols, settings.max_subscriptions)]
        self.publisher = HeartbeatPublisher(self.store, collector_id, self._snapshot,
                                            interval_s=settings.heartbeat_wall_s * rate,
                                            clock=self._durable_now,
                                            on_beat=self._on_beat)
        self.selector = SourceSelector([s.name for s in sources], settings.failover_after)
        self.window = MarketWindow(krx_calendar(), timedelta(minutes=settings.prime_minutes),
                                   timedelta(minutes=settings.linger_minutes))
        self.watchdog = StallWatchdog(self.window, settings.stall_minutes * 60)
        self.backoff = Backoff(settings.backoff_base_s, max(settings.backoff_cap_s, settings.backoff_base_s))
        self.state = "starting"
        self.fatal: str | None = None  # why the collector stopped itself (archive unwritable)
        self.status = Status.STARTING
        self.events: list[dict] = []  # the collector's own system events, for tests and the demo summary
        self.link_failures: dict[str, int] = {}
        self.reconnects = 0
        self.stalls = 0
        self._links: dict[tuple[str, int], asyncio.Task] = {}
        self._approvals: dict[tuple[str, str], str] = {}
        self._http: httpx.AsyncClient | None = None
        self._probe: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()  # hand-overs in progress
        self._last_probe_wall = 0.0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beat_stop = threading.Event()
        self._redis_failing = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop or asyncio.Event()
        self._http = httpx.AsyncClient(timeout=self.settings.connect_timeout_s)
        detail = {"symbols": len(self.symbols), "shards": len(self.shards), "sources": list(self.sources)}
        self._event("UP", detail)
        self._redis_call(self.store.event, self.id, LifecycleEvent.UP, self.clock.now_dt(),
                         {**detail, **self.publisher.up_detail()})
        beater = threading.Thread(target=self._beat_loop, name=f"collector-beat-{self.id}", daemon=True)
        beater.start()
        try:
            await self._supervise()
        finally:
            self.state = "stopping"
            for task in [*self._background, *([self._probe] if self._probe else [])]:
                task.cancel()
            await self._stop_links(list(self._links))
            await self._http.aclose()
            self._beat_stop.set()
            beater.join(timeout=10)
            self.status = Status.STOPPING
            self.state = "stopped"
            reason = "stopped" if self.fatal is None else "archive_error"
            self.publisher.beat_once()  # the final heartbeat: status stopping, state stopped
            self.publisher.stop(reason=reason)  # DOWN lifecycle event (closes the up-interval)
            self._publish_status()
            try:
                self._event("DOWN", {"reason": reason, "status": "stopped", "error": self.fatal,
                                     "seq": self.pipeline.seq, "counters": self.pipeline.counters.as_dict()})
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
                self._ensure_links()
                if self.state != "connected":
                    self.state = "connected"
                    self.watchdog.reset(now)
                silent = self.watchdog.check(now)
                if silent is not None:
                    await self._stalled(silent)
                self._maybe_probe()
            elif self._links:
                await self._stop_links(list(self._links))
                self._event("IDLE", {"reason": "outside the trading window", "next_connect": _iso(
                    self.window.next_connect(now))})
                self.state = "idle"
            else:
                self.state = "idle"
            try:
                await asyncio.wait_for(self._stop.wait(), TICK_S)
            except TimeoutError:
                pass

    # -- links (one WebSocket session a shard) -----------------------------------------------------

    def _ensure_links(self) -> None:
        active = self.selector.name
        for index in range(len(self.shards)):
            task = self._links.get((active, index))
            if task is None or task.done():
                self._links[(active, index)] = asyncio.create_task(self._link(self.sources[active], index))

    async def _stop_links(self, keys: list[tuple[str, int]]) -> None:
        tasks = [self._links.pop(k) for k in keys if k in self._links]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for k in keys:
            self.shards[k[1]].connected.discard(k[0])

    async def _link(self, source: FeedSource, index: int) -> None:
        """Connect, subscribe, stream; on failure record it, back off (wall seconds) and retry."""
        state = self.shards[index]
        attempt = 0
        key = source.keys[index % len(source.keys)]
        while True:
            healthy = False
            try:
                approval = await self._approval(source, key)
                async with self._connect(source) as ws:
                    await self._subscribe(ws, source, key, index, approval)
                    state.connected.add(source.name)
                    state.first_ts.pop(source.name, None)
                    self.watchdog.reset(self.clock.now())
                    async for message in ws:
                        if await self._handle(ws, message, source, index):
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

    def _connect(self, source: FeedSource) -> connect:
        return connect(source.ws_url, open_timeout=self.settings.connect_timeout_s, ping_interval=None,
                       max_size=None, compression=None, close_timeout=1)

    async def _approval(self, source: FeedSource, key: AppKey) -> str:
        cached = self._approvals.get((source.name, key.app_key))
        if cached:
            return cached
        assert self._http is not None
        reply = await self._http.post(f"{source.base_url.rstrip('/')}/oauth2/Approval", json={
            "grant_type": "client_credentials", "appkey": key.app_key, "secretkey": key.app_secret})
        try:
            approval = reply.json().get("approval_key")
        except ValueError:
            approval = None
        if reply.status_code != 200 or not approval:
            raise LinkError("approval", f"{source.name} {key.label}: HTTP {reply.status_code}")
        self._approvals[(source.name, key.app_key)] = approval
        return approval

    async def _subscribe(self, ws: ClientConnection, source: FeedSource, key: AppKey, index: int,
                         approval: str) -> None:
        symbols = self.shards[index].symbols
        for code in symbols:
            await ws.send(subscribe_message(approval, code))
        waiting = set(symbols)
        async with asyncio.timeout(self.settings.connect_timeout_s):
            while waiting:
                message = await ws.recv()
                if is_data(message):
                    await self._handle(ws, message, source, index)
                    continue
                header, body = _control(message)
                if header.get("tr_id") == "PINGPONG":
                    await self._pong(ws, message)
                    continue
                self.pipeline.counters.control_in += 1
                code, tr_key = body.get("msg_cd"), header.get("tr_key")
                if code in _OK_CODES:
                    waiting.discard(tr_key)
                    continue
                if code == "OPSP0011":  # approval key unknown to the server: fetch a new one next time
                    self._approvals.pop((source.name, key.app_key), None)
                self._event("SUBSCRIBE_ERROR", {"source": source.name, "shard": index, "symbol": tr_key,
                                                "msg_cd": code, "msg1": body.get("msg1")})
                raise LinkError("subscribe", f"{tr_key}: {code} {body.get('msg1')}")

    async def _handle(
        self, ws: ClientConnection, message: str | bytes, source: FeedSource, index: int,
    ) -> bool:
        """One message; True when it carried trades."""
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        if is_data(message):
            records = self.pipeline.receive(message)
            if records:
                self._on_trades(source, index, min(r.ts for r in records), max(r.ts for r in records))
                return True
            return False
        header, body = _control(message)
        if not header and not body:  # neither a data frame nor a control message: a bad frame, counted
            self.pipeline.receive(message)
        elif header.get("tr_id") == "PINGPONG":
            await self._pong(ws, message)
        else:
            self.pipeline.counters.control_in += 1
            if body.get("rt_cd") not in (None, "0") and body.get("msg_cd") not in _OK_CODES:
                self._event("SUBSCRIBE_ERROR", {"source": source.name, "shard": index,
                                                "symbol": header.get("tr_key"), "msg_cd": body.get("msg_cd"),
                                                "msg1": body.get("msg1")})
        return False

    async def _pong(self, ws: ClientConnection, message: str) -> None:
        self.pipeline.counters.pingpong += 1
        await ws.send(message)  # KIS expects PINGPONG echoed as received

    def _on_trades(self, source: FeedSource, index: int, first_ts: int, last_ts: int) -> None:
        now = self.clock.now()
        self.watchdog.reset(now)
        if source.name == self.selector.name:
            self.selector.success()
        if self.status is not Status.OK:
            self.status = Status.OK
        state = self.shards[index]
        if state.pending is not None:
            pending, state.pending = state.pending, None
            detail = {**pending, "shard": index, "symbols": len(state.symbols),
                      "symbol_list": list(state.symbols), "source": source.name,
                      "from_us": state.last_ts if state.last_ts is not None else pending["down_at_us"],
                      "to_us": first_ts, "up_at_us": int(now * 1_000_000)}
            self._event("LOSS_WINDOW", detail)
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
        self._event("DISCONNECTED", {"source": source.name, "shard": index, "reason": error.reason,
                                     "error": str(error)[:300], "was_streaming": was_healthy})
        if source.name == self.selector.name:
            switch = self.selector.failure(now, error.reason)
            if switch is not None:
                self._switched(switch)

    async def _stalled(self, silent_s: float) -> None:
        self.stalls += 1
        self.status = Status.STALLED
        now = self.clock.now()
        detail = {"silent_s": round(silent_s, 1), "source": self.selector.name,
                  "limit_s": self.settings.stall_minutes * 60}
        self._event("STALLED", detail)
        self._redis_call(self.store.event, self.id, LifecycleEvent.STALLED, self.clock.now_dt(), detail)
        stalled_source = self.selector.name
        for state in self.shards:
            if state.pending is None:
                state.pending = {"reason": "stalled", "down_at_us": int(now * 1_000_000)}
        switch = self.selector.failure(now, "stalled")
        if switch is not None:
            self._switched(switch)
        # Reconnect the stalled source's sessions (a new session is a new feed at the exchange).
        await self._stop_links([k for k in self._links if k[0] == stalled_source])
        self._ensure_links()

    # -- failover / failback ------------------------------------------------------------------------

    def _switched(self, switch: Switch) -> None:
        kind = "FAILBACK" if switch.to_source == self.selector.sources[0] else "FAILOVER"
        detail = {"from": switch.from_source, "to": switch.to_source, "reason": switch.reason,
                  "at_us": int(switch.at * 1_000_000)}
        self._event(kind, detail)
        self._redis_call(status_store.record_switch, self.redis, self.id, {"kind": kind, **detail})
        self._last_probe_wall = _wall()
        assert self._loop is not None
        task = self._loop.create_task(self._handover(switch.from_source, switch.to_source))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handover(self, old: str, new: str) -> None:
        """Make before break, shard by shard; the guard drops the overlap.

        Fail-over (the old source is failing): an old session stops as soon as the new one for its
        shard is subscribed. Fail-back (the old source still streams): an old session stops only once
        the new one has delivered a trade no newer than the old one's newest (the two streams
        overlap, so nothing falls between them); after the connect timeout it stops anyway and
        any hole between the streams is reported as a LOSS_WINDOW.
        """
        failing_old = old == self.selector.sources[0]  # the primary is left only because it failed
        for state in self.shards:
            state.first_ts.pop(new, None)  # what the new source sent before (a failed session) proves nothing
        self._ensure_links()
        deadline = _wall() + self.settings.connect_timeout_s
        pending = set(range(len(self.shards)))
        while pending and self.selector.name == new:
            expired = _wall() >= deadline
            for index in sorted(pending):
                state = self.shards[index]
                first_new, last_old = state.first_ts.get(new), state.last_by_source.get(old)
                if failing_old:
                    ready = new in state.connected
                else:
                    ready = first_new is not None and (last_old is None or first_new <= last_old)
                if ready or expired:
                    if not ready and not failing_old and last_old is not None:
                        self._event("LOSS_WINDOW", {
                            "reason": "handover", "shard": index, "symbols": len(state.symbols),
                            "symbol_list": list(state.symbols),
                            "source": new,
                            "from_us": last_old, "to_us": first_new if first_new is not None else
                            int(self.clock.now() * 1_000_000)})
                    await self._stop_links([(old, index)])
                    pending.discard(index)
            if pending:
                await asyncio.sleep(TICK_S)

    def _maybe_probe(self) -> None:
        if not self.selector.on_secondary or (self._probe is not None and not self._probe.done()):
            return
        if _wall() - self._last_probe_wall < self.settings.failback_probe_s:
            return
        self._last_probe_wall = _wall()
        self._probe = asyncio.create_task(self._probe_primary())

    async def _probe_primary(self) -> None:
        primary = self.sources[self.selector.sources[0]]
        key = primary.keys[0]
        code = self.shards[0].symbols[0]
        ok, why = False, ""
        try:
            approval = await self._approval(primary, key)
            async with self._connect(primary) as ws:
                await ws.send(subscribe_message(approval, code))
                got_data = subscribed = False
                loop = asyncio.get_running_loop()
                end = loop.time() + self.settings.probe_hold_s
                while loop.time() < end:
                    try:
                        message = await asyncio.wait_for(ws.recv(), max(0.01, end - loop.time()))
                    except TimeoutError:
                        break
                    if is_data(message):
                        got_data = True
                    else:
                        header, body = _control(message)
                        if header.get("tr_id") == "PINGPONG":
                            await ws.send(message)
                        elif body.get("msg_cd") in _OK_CODES:
                            subscribed = True
                quiet_ok = not self.window.continuous(self.clock.now())
                ok = subscribed and (got_data or quiet_ok)
                why = f"subscribed={subscribed} data={got_data}"
        except (OSError, TimeoutError, WebSocketException, httpx.HTTPError, LinkError) as error:
            why = f"{type(error).__name__}: {error}"[:200]
        self._event("PROBE", {"source": primary.name, "ok": ok, "detail": why})
        if ok:
            switch = self.selector.probe_succeeded(self.clock.now())
            if switch is not None:
                self._switched(switch)

    # -- heartbeats, status, events -----------------------------------------------------------------

    def _beat_loop(self) -> None:
        while not self._beat_stop.is_set():
            self.publisher.interval_s = self.settings.heartbeat_wall_s * max(self.clock.rate, 1.0)
            self.publisher.beat_once()
            self._publish_status()
            self._beat_stop.wait(self.settings.heartbeat_wall_s)

    def _snapshot(self) -> Snapshot:
        last = self.pipeline.last_trade_ts
        last_at = datetime.fromtimestamp(last / 1e6, UTC) if last else None
        return Snapshot(tuple(self.symbols), last_at, self.status)

    def _durable_now(self) -> datetime:
        """The instant a beat vouches for: everything executed before it is archived.

        A beat is stamped `durability_margin_s` (wall, converted to exchange time) in the past and
        the writer is flushed before the beat is sent, so a trade still in flight (feed latency,
        socket buffers, the pipeline) when the process is killed lies after the last beat: inside
        the downtime the gap machinery recovers, never in a minute it believes was covered.
        The first beat is therefore stamped before the UP event; the publisher keeps every beat at
        or after its start time, which the UP event announces (`HeartbeatPublisher.up_detail`).
        """
        now = self.clock.now()
        margin = self.settings.durability_margin_s * self.clock.rate
        return datetime.fromtimestamp(now - max(margin, self.lag_s(now) + 1.0), UTC)

    def lag_s(self, now: float | None = None) -> float:
        """How far behind the exchange the pipeline is (exchange seconds): the largest lag a shard
        measured in the last wall second (a shard idle longer than that has nothing queued)."""
        now = self.clock.now() if now is None else now
        recent = max(1.0, self.clock.rate)
        lags = [s.lag_s for s in self.shards if now - s.lag_at <= recent]
        return max(lags, default=0.0)

    def _on_beat(self, hb: Heartbeat) -> None:
        try:
            self.writer.flush(fsync=True)
        except DiskSpaceLow:
            pass  # counted by the pipeline; the writer retries the kept lines
        except OSError as error:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._fatal_error, f"archive write failed: {error}")
            return
        try:
            self.writer.write_system("HEARTBEAT", {
                "seq": self.pipeline.seq, "interval_s": hb.interval_s, "status": hb.status.value,
                "state": self.state, "durable_until_us": int(hb.at.timestamp() * 1_000_000),
                "source": self.selector.name, "connected": self._connected(),
                "counters": self.pipeline.counters.as_dict(),
            })
        except OSError as error:
            log.warning("collector %s: heartbeat line not archived: %s", self.id, error)

    def _connected(self) -> int:
        return sum(1 for s in self.shards if self.selector.name in s.connected)

    def status_fields(self) -> dict[str, object]:
        return {
            "state": self.state, "status": self.status.value, "source": self.selector.name,
            "at_us": int(self.clock.now() * 1_000_000), "symbols": len(self.symbols),
            "shards": len(self.shards), "connected": self._connected(), "seq": self.pipeline.seq,
            "counters": self.pipeline.counters.as_dict(),
            "switches": len(self.selector.switches), "reconnects": self.reconnects, "stalls": self.stalls,
            "lag_s": round(self.lag_s(), 3),
            "link_failures": self.link_failures,
        }

    def _publish_status(self) -> None:
        self._redis_call(status_store.write_status, self.redis, self.id, self.status_fields())

    def _event(self, event: str, detail: dict) -> None:
        self.events.append({"event": event, **detail})
        self.writer.write_system(event, detail)
        log.info("%s %s %s", self.id, event, json.dumps(detail, default=str)[:300])

    def _redis_call(self, function, *args, **kwargs) -> None:
        try:
            function(*args, **kwargs)
        except redis.RedisError as error:
            if not self._redis_failing:
                log.warning("collector %s: Redis call failed (continuing, the archive keeps the record): %s",
                            self.id, error)
            self._redis_failing = True
        else:
            self._redis_failing = False


def subscribe_message(approval_key: str, code: str, subscribe: bool = True) -> str:
    return json.dumps({
        "header": {"approval_key": approval_key, "custtype": "P", "tr_type": "1" if subscribe else "2",
                   "content-type": "utf-8"},
        "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}},
    })


def _control(message: str) -> tuple[dict, dict]:
    try:
        parsed = json.loads(message)
    except ValueError:
        return {}, {}
    if not isinstance(parsed, dict):
        return {}, {}
    header = parsed.get("header") if isinstance(parsed.get("header"), dict) else {}
    body = parsed.get("body") if isinstance(parsed.get("body"), dict) else {}
    return header, body


def _wall() -> float:
    return time.monotonic()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
