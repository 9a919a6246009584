"""Helpers for collector tests against the simulated exchange over real WebSocket connections.

The exchange runs fast (speed 60-120) from a chosen start; the collector lives on the
exchange's clock (`ExchangeClock`, GET /admin/clock), so a test covers minutes of session in
seconds. Truth is the simulator's own day (`SimDay`), keyed by (symbol, cum).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from stock_pipelines.archive.ticks import IngestResult, ingest_day
from stock_pipelines.collector.clock import ExchangeClock
from stock_pipelines.collector.config import AppKey, CollectorSettings, FeedSource
from stock_pipelines.collector.handle import CollectorThread
from stock_pipelines.collector.runner import Collector
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.sim.day import SimDay
from stock_pipelines_tests.past_day import pin_clock_after

DAY = date(2026, 11, 20)
US = 1_000_000


def seoul(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, second, tzinfo=SEOUL)


def fast_settings(**overrides) -> CollectorSettings:
    values = dict(heartbeat_wall_s=0.1, backoff_base_s=0.05, backoff_cap_s=0.3, connect_timeout_s=5.0,
                  failback_probe_s=0.5, probe_hold_s=0.3)
    values.update(overrides)
    return CollectorSettings(**values)


def source(url: str, name: str = "primary", key: str = "key-1") -> FeedSource:
    return FeedSource(name, "kis", str(url), url.ws_url, (AppKey(key, "secret-of-" + key),))


def admin(url: str, path: str, body: dict | None = None) -> dict:
    reply = httpx.post(f"{url}{path}", json=body or {}, timeout=10) if body is not None else httpx.get(
        f"{url}{path}", timeout=10)
    reply.raise_for_status()
    return reply.json()


def pin(url: str) -> int:
    """Pin the exchange clock now; the instant in epoch µs."""
    return int(datetime.fromisoformat(admin(url, "/admin/clock", {"pinned": True})["now"]).timestamp() * US)


def end_the_day(url: str, env: dict[str, str], monkeypatch) -> None:
    """After a collector process ran: pin the exchange an hour after the close (the day is a past,
    complete one) and give this test process the collector's settings, for the day's pipeline."""
    session = krx_calendar().session(DAY)
    admin(url, "/admin/clock", {"at": (session.close + timedelta(hours=1)).isoformat(), "pinned": True})
    for name, value in env.items():
        if name.startswith(("KIS_", "STOCK_PIPELINES_", "REDIS_URL")):
            monkeypatch.setenv(name, value)
    pin_clock_after(monkeypatch, DAY)  # the pipeline's clock: the day is a past one whatever the date


@contextmanager
def live_collector(url: str, symbols: list[str], archive: Path, redis_client, settings: CollectorSettings,
                   sources: list[FeedSource] | None = None, collector_id: str = "live-1",
                   ) -> Iterator[tuple[Collector, CollectorThread, ExchangeClock]]:
    clock = ExchangeClock(str(url), resync_s=0.3)
    try:
        collector = Collector(collector_id, symbols, sources or [source(url)], archive, redis_client,
                              settings,
                              clock=clock, min_free_bytes=1)
        with CollectorThread(collector) as handle:
            yield collector, handle, clock
    finally:
        clock.close()


def wait_subscribed(handle: CollectorThread, collector: Collector, source_name: str = "primary") -> None:
    handle.wait_for(lambda: all(source_name in s.connected for s in collector.shards), 15,
                    "every shard subscribed")


def drain(collector: Collector, quiet_s: float = 0.6, timeout_s: float = 20.0) -> None:
    """Wait until the collector has taken in everything the (pinned) exchange sent."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = collector.pipeline.counters.records_in
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)
    raise TimeoutError("the collector kept receiving")


def archived(root: Path) -> IngestResult:
    result = ingest_day([(root, "")], DAY, krx_calendar().session(DAY))
    result.stats.check_accounting()
    return result


def keys(result: IngestResult) -> set[tuple[str, int]]:
    return set(zip(result.ticks["symbol"].to_list(), result.ticks["cum"].to_list(), strict=True))


def truth(sim: SimDay, until_us: int, after: datetime | None = None) -> dict[tuple[str, int], int]:
    """(symbol, cum) -> ts of every trade executed in (after, until_us]: what the exchange streamed
    to sessions that subscribed while its clock was pinned at `after`."""
    after_us = int(after.timestamp() * US) if after is not None else 0
    out = {}
    for code in sim.codes:
        trades = sim.trades(code, until_us=until_us)
        out.update({(code, int(c)): int(t) // US * US
                    for c, t in zip(trades.cum, trades.ts, strict=True) if t > after_us})
    return out


def loss_windows(collector: Collector) -> list[tuple[int, int]]:
    return [(e["from_us"], e["to_us"]) for e in collector.events if e["event"] == "LOSS_WINDOW"]


def assert_missing_inside_windows(expected: dict[tuple[str, int], int], got: set[tuple[str, int]],
                                  windows: list[tuple[int, int]]) -> set[tuple[str, int]]:
    assert got <= set(expected), f"{len(got - set(expected))} archived trades the exchange never sent"
    missing = set(expected) - got
    outside = [(k, expected[k]) for k in missing if not any(a <= expected[k] <= b for a, b in windows)]
    assert not outside, f"{len(outside)} lost trades outside the loss windows {windows}: {outside[:5]}"
    return missing
