"""The collector side: beat at a fixed interval from a background thread.

The collector hands over a `snapshot()` callable returning its current subscribed symbols, last
trade time and status; the publisher adds identity (id, host, pid, start time) and beats. No beat
is stamped before the start time (a back-dating clock may ask for that), and the UP event says so,
so the sensor can tell this process's history from the one before it. A
Redis outage never stops the collector: the failure is logged once, counted, and the next beat
tries again. `on_beat` lets the collector mirror each beat into its archive system stream (the
second source of history).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from stock_pipelines.heartbeat.model import (
    BEATS_FROM_KEY,
    DEFAULT_INTERVAL_S,
    MERGE_TOLERANCE_INTERVALS,
    Clock,
    Heartbeat,
    LifecycleEvent,
    Status,
    to_us,
    utc_now,
)
from stock_pipelines.heartbeat.store import HeartbeatStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    symbols: tuple[str, ...]
    last_trade_at: datetime | None
    status: Status = Status.OK


class HeartbeatPublisher:
    def __init__(
        self,
        store: HeartbeatStore,
        collector: str,
        snapshot: Callable[[], Snapshot],
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Clock = utc_now,
        on_beat: Callable[[Heartbeat], None] | None = None,
    ) -> None:
        self.store, self.collector, self.snapshot = store, collector, snapshot
        self.interval_s, self.clock, self.on_beat = interval_s, clock, on_beat
        self.started_at = clock()
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat_once(self) -> Heartbeat:
        state = self.snapshot()
        hb = Heartbeat(
            collector=self.collector, host=socket.gethostname(), pid=os.getpid(), started_at=self.started_at,
            at=max(self.clock(), self.started_at), symbols=state.symbols, last_trade_at=state.last_trade_at, status=state.status,
            interval_s=self.interval_s,
        )
        if self.on_beat is not None:
            self.on_beat(hb)
        try:
            self.store.beat(hb)
        except redis.RedisError as error:
            self.failures += 1
            if not self._failing:
                log.warning("heartbeat to Redis failed (will keep trying every %.1f s): %s", self.interval_s, error)
            self._failing = True
        else:
            if self._failing:
                log.info("heartbeat to Redis works again after %d failed beats", self.failures)
            self._failing = False
        return hb

    def up_detail(self) -> dict:
        """What an UP event says about this process's beats: none is stamped before `started_at`."""
        return {BEATS_FROM_KEY: to_us(self.started_at)}

    def start(self) -> None:
        """UP event, then a daemon thread beating every `interval_s` until `stop()`."""
        self._emit(LifecycleEvent.UP, self.up_detail())
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.collector}", daemon=True)
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
        self._emit(LifecycleEvent.DOWN, {"reason": reason})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat_once()
            self._stop.wait(self.interval_s)

    def _emit(self, event: LifecycleEvent, detail: dict | None = None) -> None:
        try:
            tolerance = timedelta(seconds=self.interval_s * MERGE_TOLERANCE_INTERVALS)
            self.store.event(self.collector, event, self.clock(), detail, tolerance=tolerance)
        except redis.RedisError as error:
            log.warning("could not record %s for %s in Redis: %s", event.value, self.collector, error)

