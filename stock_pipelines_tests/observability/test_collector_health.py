"""A collector's /health names every reason it is unhealthy, one a line, served over HTTP by the
collector's own metrics server; `stock_pipelines_collector_healthy` agrees. The collector is a real
one that never connects: each condition is brought about the way the running collector reaches it
(a trade refused at the disk floor, the watchdog's stalled status, a beat thread gone quiet)."""

from __future__ import annotations

import time

import pytest
import redis

from stock_pipelines.archive.record import TradeRecord
from stock_pipelines.archive.writer import DiskSpaceLow
from stock_pipelines.collector import metrics
from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.collector.runner import Collector
from stock_pipelines.heartbeat import Status
from stock_pipelines_tests.waiting import wait_until

from .scrape import health, scrape

SOURCE = FeedSource("primary", "kis", "http://127.0.0.1:1", "ws://127.0.0.1:1", (AppKey("k", "s"),))


def archived(collector: Collector, record: TradeRecord) -> bool:
    try:
        collector.writer.write_trades([record])
    except DiskSpaceLow:
        return False
    return True


def test_health_names_each_reason_and_recovers(tmp_path):
    collector = Collector("health-1", ["005930"], [SOURCE], tmp_path, redis.Redis(host="127.0.0.1", port=1),
                          min_free_bytes=1)
    server = metrics.serve(collector, "127.0.0.1", 0)
    try:
        collector.state = "idle"  # outside the trading window: nothing to be connected to
        assert health(server.port) == (200, "ok\n")

        collector.state = "connected"
        collector.status = Status.STALLED
        collector.reporting.last_beat_monotonic = time.monotonic() - 60
        collector.writer.min_free_bytes = 10**18
        with pytest.raises(DiskSpaceLow):
            collector.writer.write_trades([TradeRecord("kis", "005930", 1, 1, 70_000, 1, 1, 1)])
        status, body = health(server.port)
        assert status == 503
        lines = body.splitlines()
        assert lines[0] == "stalled: no trades on source primary"
        assert lines[1].startswith("heartbeat: none for 6") and lines[1].endswith(" s (limit 15.0 s)")
        assert lines[2] == f"disk: free space below the floor of {10**18} bytes, trades refused"
        assert lines[3] == "feed: no session subscribed on source primary"
        assert len(lines) == 4
        got = scrape(server.port)
        assert got.value("stock_pipelines_collector_healthy", collector="health-1") == 0
        assert got.value("stock_pipelines_collector_disk_low", collector="health-1") == 1
        assert got.value("stock_pipelines_collector_status", collector="health-1", status="stalled") == 1

        collector.status = Status.OK
        collector.reporting.last_beat_monotonic = time.monotonic()
        collector.writer.min_free_bytes = 1
        wait_until(lambda: archived(collector, TradeRecord("kis", "005930", 2, 2, 70_000, 1, 2, 2)), 10,
                   "the writer to see the space again (it measures once a second)")
        collector.shards[0].connected.add("primary")
        assert health(server.port) == (200, "ok\n")
        assert scrape(server.port).value("stock_pipelines_collector_healthy", collector="health-1") == 1
    finally:
        server.close()
        collector.writer.close()
