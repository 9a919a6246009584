"""Failover and failback between the collector's feed sources: the switch itself (recorded), and
- hot standby (the default with a secondary): both sources stream all the time; a switch hands
  nothing over, the fail-back happens when the primary streams again on every shard, a source
  silent alone is a stall of it, and the standby's state is watched (STANDBY_DOWN/STANDBY_LIVE);
- cold standby: the secondary standing by beside a failing primary, the make-before-break
  hand-over shard by shard, and the probe of the primary while on the secondary.

When to switch is decided by `policy.SourceSelector`; this carries the switch out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx
import redis
from websockets.exceptions import WebSocketException

from stock_pipelines.collector import kis_session
from stock_pipelines.collector import status as status_store
from stock_pipelines.collector.clock import SystemClock
from stock_pipelines.collector.config import CollectorSettings, FeedSource
from stock_pipelines.collector.feeds import ACK, DATA, PING, Feeds
from stock_pipelines.collector.journal import Journal
from stock_pipelines.collector.policy import MarketWindow, SourceSelector, StallWatchdog, Switch
from stock_pipelines.collector.shard_state import ShardState

TICK_S = 0.05  # wall seconds between hand-over passes


class Links(Protocol):
    """The collector's sessions, one a (source, shard)."""

    standby: bool  # also keep the secondary's sessions while on the primary (cold standby)
    hot: bool  # every source's sessions stream all the time (hot standby)

    def ensure_links(self) -> None: ...

    async def stop_links(self, keys: list[tuple[str, int]]) -> None: ...


class Failover:
    def __init__(
        self,
        collector_id: str,
        sources: dict[str, FeedSource],
        selector: SourceSelector,
        shards: list[ShardState],
        links: Links,
        feeds: Feeds,
        journal: Journal,
        redis_client: redis.Redis,
        settings: CollectorSettings,
        clock: SystemClock,
        window: MarketWindow,
    ) -> None:
        self.id = collector_id
        self.sources = sources
        self.selector = selector
        self.shards = shards
        self.links = links
        self.feeds = feeds
        self.journal = journal
        self.redis = redis_client
        self.settings = settings
        self.clock = clock
        self.window = window
        self._probe: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()  # hand-overs in progress
        self._last_probe_wall = 0.0
        self._standby_was_live: bool | None = None  # None until the standby was first live
        # hot standby: a watchdog a source, since the collector's, fed by both, misses one going silent
        self._watches = {name: StallWatchdog(window, settings.stall_minutes * 60)
                         for name in sources} if links.hot else {}
        self._delivered_at: dict[str, float] = {}  # clock time a source last delivered trades
        self._stalled: set[str] = set()  # sources found silent alone, until they deliver again

    def tasks(self) -> list[asyncio.Task]:
        """Hand-overs and the probe still running, for the collector to cancel when it stops."""
        return [*self._background, *([self._probe] if self._probe else [])]

    def stand_by(self, reason: str) -> None:
        """The primary failed, not yet `failover_after` times in a row: subscribe the secondary's
        sessions beside it now (the guard drops what both deliver), so that a fail-over finds
        them streaming and the trades between the primary's break and the switch are not lost."""
        if self.links.standby or self.selector.on_secondary or len(self.selector.sources) < 2:
            return
        self.links.standby = True
        self.journal.event("STANDBY", {"source": self.selector.sources[1], "reason": reason})
        self.links.ensure_links()

    def primary_recovered(self) -> None:
        """The primary delivers again: release the standing-by secondary, make-before-break."""
        self.links.standby = False
        secondary, primary = self.selector.sources[1], self.selector.sources[0]
        self.journal.event("STANDBY_RELEASED", {"source": secondary})
        self._start(self._handover(secondary, primary))

    def standby_source(self) -> str | None:
        """The source that is not writing (hot standby only)."""
        if not self.links.hot:
            return None
        return next(name for name in self.selector.sources if name != self.selector.name)

    def standby_connected(self) -> int:
        """Shards the hot standby has subscribed (0 without one)."""
        name = self.standby_source()
        return 0 if name is None else sum(1 for s in self.shards if name in s.connected)

    def standby_live(self) -> bool | None:
        """Hot standby: every shard subscribed on it and not found silent alone; None without one."""
        if not self.links.hot:
            return None
        return self.standby_connected() == len(self.shards) and self.standby_source() not in self._stalled

    def watch_standby(self) -> None:
        """A hot standby that goes down (or comes back) is a STANDBY_DOWN (STANDBY_LIVE) event; it
        is also in the status hash, the heartbeat line and /metrics."""
        live = self.standby_live()
        if live is None or live == self._standby_was_live:
            return
        first = self._standby_was_live is None
        self._standby_was_live = live if live or not first else None
        if first:
            return  # coming up at the start is no news
        self.journal.event("STANDBY_LIVE" if live else "STANDBY_DOWN", {
            "source": self.standby_source(), "broker": self.sources[self.standby_source()].broker,
            "connected": self.standby_connected(), "shards": len(self.shards)})

    def source_alive(self, name: str, now: float) -> None:
        """The source delivered trades."""
        if name in self._watches:
            self._watches[name].reset(now)
            self._delivered_at[name] = now
            self._stalled.discard(name)

    def source_subscribed(self, name: str, now: float) -> None:
        """A session of the source subscribed: its silence is counted from now."""
        if name in self._watches:
            self._watches[name].reset(now)

    def restart_watches(self, now: float) -> None:
        for watch in self._watches.values():
            watch.reset(now)

    async def check_sources(self, now: float) -> None:
        """Hot standby: one source silent (in continuous trading) while the other delivers is a
        stall of that source alone: reconnect its sessions, and count it as a failure when it is
        the active one (a fail-over finds the other streaming). A source not subscribed on every
        shard is reconnecting (its failures are counted as they come), and both silent is the
        collector's watchdog's business, or a starved process: neither is a stall of one."""
        limit_s = self.settings.stall_minutes * 60
        for name, watch in self._watches.items():
            subscribed = all(name in s.connected for s in self.shards)
            other_delivers = any(now - at < limit_s / 2
                                 for other, at in self._delivered_at.items() if other != name)
            if not (subscribed and other_delivers):
                watch.reset(now)
                continue
            silent = watch.check(now)
            if silent is None:
                continue
            self._stalled.add(name)
            self.journal.event("STALLED", {"silent_s": round(silent, 1), "source": name, "alone": True,
                                           "limit_s": self.settings.stall_minutes * 60})
            if name == self.selector.name:
                switch = self.selector.failure(now, "stalled")
                if switch is not None:
                    self.switched(switch)
            await self.links.stop_links([(name, index) for index in range(len(self.shards))])
            self.links.ensure_links()

    def primary_delivers(self) -> None:
        """Hot standby, on the secondary: the primary's sessions stream again. Fail back once every
        shard of it is subscribed: make-before-break by construction, as the secondary streams on
        (as the standby) and the guard keeps each trade once."""
        primary = self.selector.sources[0]
        if all(primary in s.connected for s in self.shards):
            switch = self.selector.probe_succeeded(self.clock.now())
            if switch is not None:
                self.switched(switch, "failback: the primary streams again on every shard")

    def switched(self, switch: Switch, reason: str | None = None) -> None:
        """Record a switch the selector made and start the hand-over (from the collector's loop)."""
        kind = "FAILBACK" if switch.to_source == self.selector.sources[0] else "FAILOVER"
        detail = {"from": switch.from_source, "to": switch.to_source,
                  "from_broker": self.sources[switch.from_source].broker,
                  "to_broker": self.sources[switch.to_source].broker, "reason": reason or switch.reason,
                  "at_us": int(switch.at * 1_000_000)}
        self.journal.event(kind, detail)
        self.journal.redis_call(status_store.record_switch, self.redis, self.id, {"kind": kind, **detail})
        self._last_probe_wall = _wall()
        self.links.standby = False
        if self.links.hot:
            self.links.ensure_links()  # both sources keep streaming: nothing to hand over
        else:
            self._start(self._handover(switch.from_source, switch.to_source))

    def _start(self, handover) -> None:
        task = asyncio.get_running_loop().create_task(handover)
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
        self.links.ensure_links()
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
                        self.journal.event("LOSS_WINDOW", {
                            "reason": "handover", "shard": index, "symbols": len(state.symbols),
                            "symbol_list": list(state.symbols),
                            "source": new,
                            "from_us": last_old, "to_us": first_new if first_new is not None else
                            int(self.clock.now() * 1_000_000)})
                    await self.links.stop_links([(old, index)])
                    pending.discard(index)
            if pending:
                await asyncio.sleep(TICK_S)

    def maybe_probe(self) -> None:
        """On the secondary, probe the primary every `failback_probe_s` (one probe at a time)."""
        if self.links.hot:
            return  # the primary's own sessions keep retrying; their trades trigger the fail-back
        if not self.selector.on_secondary or (self._probe is not None and not self._probe.done()):
            return
        if _wall() - self._last_probe_wall < self.settings.failback_probe_s:
            return
        self._last_probe_wall = _wall()
        self._probe = asyncio.create_task(self._probe_primary())

    async def _probe_primary(self) -> None:
        primary = self.sources[self.selector.sources[0]]
        feed = self.feeds.of(primary)
        key = primary.keys[0]
        code = self.shards[0].symbols[0]
        ok, why = False, ""
        try:
            credential = await feed.credential(primary, key)
            async with kis_session.open_session(primary, self.settings.connect_timeout_s) as ws:
                async with asyncio.timeout(self.settings.connect_timeout_s):
                    await feed.start(ws, credential)
                for text in feed.subscribe_messages(credential, (code,)):
                    await ws.send(text)
                got_data = subscribed = False
                loop = asyncio.get_running_loop()
                end = loop.time() + self.settings.probe_hold_s
                while loop.time() < end:
                    try:
                        message = await asyncio.wait_for(ws.recv(), max(0.01, end - loop.time()))
                    except TimeoutError:
                        break
                    if isinstance(message, bytes):
                        message = message.decode("utf-8", errors="replace")
                    kind = feed.read(message).kind
                    if kind == DATA:
                        got_data = True
                    elif kind == PING:
                        await ws.send(message)
                    elif kind == ACK:
                        subscribed = True
                quiet_ok = not self.window.continuous(self.clock.now())
                ok = subscribed and (got_data or quiet_ok)
                why = f"subscribed={subscribed} data={got_data}"
        except kis_session.LinkError as error:
            if error.reason == "unauthorized":
                feed.forget(primary, key)
            why = f"{type(error).__name__}: {error}"[:200]
        except (OSError, TimeoutError, WebSocketException, httpx.HTTPError) as error:
            why = f"{type(error).__name__}: {error}"[:200]
        self.journal.event("PROBE", {"source": primary.name, "broker": primary.broker, "ok": ok,
                                     "detail": why})
        if ok:
            switch = self.selector.probe_succeeded(self.clock.now())
            if switch is not None:
                self.switched(switch)


def _wall() -> float:
    return time.monotonic()
