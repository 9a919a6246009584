"""`run_for_demo`: a real collector against the simulated exchange for a stretch of its day.

For `stock-pipelines demo` (and scripts): start `sim exchange` running (e.g. `--speed 600 --start
08:50`), call this with its URL; the collector connects from 08:55 exchange time, archives what
the exchange streams, and stops gracefully once the exchange clock passes `until`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stock_pipelines.collector.clock import ExchangeClock
from stock_pipelines.collector.config import AppKey, CollectorSettings, FeedSource, ws_url_from_base
from stock_pipelines.collector.handle import CollectorThread
from stock_pipelines.collector.runner import Collector


@dataclass(frozen=True)
class DemoCollectorResult:
    collector_id: str
    archived: int  # trade lines written
    counters: dict  # the pipeline's stage counters
    events: list[dict]  # the collector's own system events (UP, LOSS_WINDOW, FAILOVER, ..., DOWN)
    seconds: float


def run_for_demo(
    base_url: str,
    symbols: list[str],
    until: datetime,
    archive_dir: Path,
    *,
    collector_id: str = "demo-kis-1",
    app_key: str,
    app_secret: str,
    redis_client=None,
    settings: CollectorSettings | None = None,
    timeout_s: float = 600.0,
) -> DemoCollectorResult:
    """Run until the exchange's clock reaches `until` (tz-aware), then stop gracefully.

    Redis defaults to `redis_conn.redis_client()`.
    Heartbeats are spaced 0.1 wall seconds so that, at the demo's speed, the gap machinery sees
    up-intervals at a resolution finer than a minute of exchange time.
    """
    from stock_pipelines.redis_conn import redis_client as default_redis

    key = AppKey(app_key, app_secret)
    source = FeedSource("primary", "kis", base_url, ws_url_from_base(base_url), (key,))
    clock = ExchangeClock(base_url, resync_s=0.5)
    started = time.monotonic()
    try:
        collector = Collector(collector_id, symbols, [source], Path(archive_dir),
                              redis_client or default_redis(),
                              settings or CollectorSettings(heartbeat_wall_s=0.1), clock=clock)
        with CollectorThread(collector) as running:
            running.wait_for(lambda: clock.now() >= until.timestamp(), timeout_s, f"exchange time {until}")
    finally:
        clock.close()
    return DemoCollectorResult(collector_id, collector.pipeline.counters.archived,
                               collector.pipeline.counters.as_dict(), list(collector.events),
                               round(time.monotonic() - started, 2))
