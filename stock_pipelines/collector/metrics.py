"""A collector's `/metrics` and `/health` (docs/operations.md, "Metrics").

Nothing is counted twice: the series are read at scrape time from what the collector already keeps
for its Redis status (the pipeline's stage counters, reconnects, stalls, link failures, source
switches, the status publisher's lag and beats, the writer's disk floor). A custom collector on a
registry of the process's own does the reading on the HTTP server's thread: the event loop never
updates a metric and never waits for a scrape.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from stock_pipelines.heartbeat import Status
from stock_pipelines.metrics_server import MetricsServer

if TYPE_CHECKING:
    from stock_pipelines.collector.runner import Collector

STATES = ("starting", "connected", "idle", "stopping", "stopped")
SILENT_BEATS = 3  # heartbeats missed before /health says the beat thread is stuck
SILENT_FLOOR_S = 5.0

# name -> (kind, help, labels besides `collector`)
SERIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "stock_pipelines_collector_trades_total": (
        "counter", ("Trades at each pipeline stage: received (parsed from good frames), duplicate and "
                    "out_of_order (guard), archived, refused (disk floor)"), ("stage",)),
    "stock_pipelines_collector_frames_total": (
        "counter", "WebSocket messages by kind: data, control, pingpong, bad", ("kind",)),
    "stock_pipelines_collector_bad_frames_total": ("counter", "Rejected data frames by reason", ("reason",)),
    "stock_pipelines_collector_cum_gaps_total": (
        "counter", "Jumps in a symbol's cumulative volume (trades missed by the feed)", ()),
    "stock_pipelines_collector_cum_gap_volume_total": ("counter", "Volume missed in those jumps", ()),
    "stock_pipelines_collector_heartbeat_age_seconds": (
        "gauge", "Wall seconds since the collector last heartbeat", ()),
    "stock_pipelines_collector_heartbeat_failures_total": ("counter", "Heartbeats Redis did not take", ()),
    "stock_pipelines_collector_reconnects_total": ("counter", "WebSocket sessions lost and reopened", ()),
    "stock_pipelines_collector_link_failures_total": ("counter", "Session failures by reason", ("reason",)),
    "stock_pipelines_collector_loss_windows_total": (
        "counter", "Loss windows recorded (a shard's downtime the gap machinery recovers)", ()),
    "stock_pipelines_collector_stalls_total": ("counter", "Feed stalls detected by the watchdog", ()),
    "stock_pipelines_collector_lag_seconds": (
        "gauge", "How far the archive writer is behind the exchange (exchange seconds)", ()),
    "stock_pipelines_collector_disk_free_bytes": ("gauge", "Free bytes on the archive's filesystem", ()),
    "stock_pipelines_collector_disk_floor_bytes": ("gauge", "Free-space floor: lines are refused below", ()),
    "stock_pipelines_collector_disk_low": ("gauge", "1 while below the free-space floor", ()),
    "stock_pipelines_collector_shards": ("gauge", "WebSocket sessions the symbols need", ()),
    "stock_pipelines_collector_shards_connected": ("gauge", "Sessions subscribed on the active source", ()),
    "stock_pipelines_collector_source_sessions": (
        "gauge", "Sessions subscribed, by source (a hot standby's too)", ("source", "broker")),
    "stock_pipelines_collector_standby_live": (
        "gauge", "Hot standby: 1 while every shard is subscribed on the standby source, 0 while it is down", ()),
    "stock_pipelines_collector_trades_written_total": (
        "counter", "Trades archived, by the broker whose feed delivered them first", ("broker",)),
    "stock_pipelines_collector_source_active": ("gauge", "1 for the feed source in use", ("source",)),
    "stock_pipelines_collector_failed_over": ("gauge", "1 while a secondary source is in use", ()),
    "stock_pipelines_collector_source_switches_total": ("counter", "Failovers and failbacks", ()),
    "stock_pipelines_collector_state": ("gauge", "1 for the collector's current state", ("state",)),
    "stock_pipelines_collector_status": ("gauge", "1 for the status its heartbeats carry", ("status",)),
    "stock_pipelines_collector_healthy": ("gauge", "1 while /health answers 200", ()),
}


def _family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    kind, help_text, labels = SERIES[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_text, labels=["collector", *labels])


class CollectorMetrics(PrometheusCollector):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def describe(self) -> list[Metric]:
        return []  # registering must not read the collector (it may not be running yet)

    def collect(self) -> Iterator[Metric]:
        cid = self.collector.id
        for name, samples in self._values().items():
            family = _family(name)
            for labels, value in samples:
                family.add_metric([cid, *labels], value)
            yield family

    def _values(self) -> dict[str, list[tuple[tuple[str, ...], float]]]:
        c = self.collector
        counters = c.pipeline.counters
        writer, selector = c.writer, c.selector
        publisher = c.reporting
        active = selector.name
        age = heartbeat_age_s(c)
        events = list(c.journal.events)
        values: dict[str, list[tuple[tuple[str, ...], float]]] = {
            "stock_pipelines_collector_trades_total": [
                (("received",), counters.records_in), (("duplicate",), counters.duplicates),
                (("out_of_order",), counters.out_of_order), (("archived",), counters.archived),
                (("refused",), counters.refused)],
            "stock_pipelines_collector_frames_total": [
                (("data",), counters.frames_in - counters.frames_bad), (("control",), counters.control_in),
                (("pingpong",), counters.pingpong), (("bad",), counters.frames_bad)],
            "stock_pipelines_collector_bad_frames_total": [
                ((reason,), n) for reason, n in dict(counters.bad_by_reason).items()],
            "stock_pipelines_collector_cum_gaps_total": [((), counters.cum_gaps)],
            "stock_pipelines_collector_cum_gap_volume_total": [((), counters.cum_gap_volume)],
            "stock_pipelines_collector_heartbeat_age_seconds": [] if age is None else [((), age)],
            "stock_pipelines_collector_heartbeat_failures_total": [((), publisher.heartbeats.failures)],
            "stock_pipelines_collector_reconnects_total": [((), c.reconnects)],
            "stock_pipelines_collector_link_failures_total": [
                ((reason,), n) for reason, n in dict(c.link_failures).items()],
            "stock_pipelines_collector_loss_windows_total": [
                ((), sum(1 for e in events if e["event"] == "LOSS_WINDOW"))],
            "stock_pipelines_collector_stalls_total": [((), c.stalls)],
            "stock_pipelines_collector_lag_seconds": [((), publisher.lag_s())],
            "stock_pipelines_collector_disk_floor_bytes": [((), writer.min_free_bytes)],
            "stock_pipelines_collector_disk_low": [((), float(writer.disk_low))],
            "stock_pipelines_collector_shards": [((), len(c.shards))],
            "stock_pipelines_collector_shards_connected": [((), publisher.connected())],
            "stock_pipelines_collector_source_sessions": [
                ((name, c.sources[name].broker), sum(1 for s in c.shards if name in s.connected))
                for name in selector.sources],
            "stock_pipelines_collector_standby_live": [] if (live := c.failover.standby_live()) is None else [
                ((), float(live))],
            "stock_pipelines_collector_trades_written_total": [
                ((broker,), n) for broker, n in dict(counters.archived_by_src).items()],
            "stock_pipelines_collector_source_active": [
                ((name,), float(name == active)) for name in selector.sources],
            "stock_pipelines_collector_failed_over": [((), float(active != selector.sources[0]))],
            "stock_pipelines_collector_source_switches_total": [((), len(selector.switches))],
            "stock_pipelines_collector_state": [((state,), float(state == c.state)) for state in STATES],
            "stock_pipelines_collector_status": [((s.value,), float(s is c.status)) for s in Status],
            "stock_pipelines_collector_healthy": [((), float(not health_reasons(c)))],
        }
        free = free_bytes(c)
        values["stock_pipelines_collector_disk_free_bytes"] = [] if free is None else [((), free)]
        return values


def heartbeat_age_s(collector: Collector) -> float | None:
    last = collector.reporting.last_beat_monotonic
    return None if last is None else time.monotonic() - last


def free_bytes(collector: Collector) -> int | None:
    try:
        return shutil.disk_usage(collector.writer.root).free
    except OSError:
        return None


def health_reasons(collector: Collector) -> list[str]:
    """Why the collector is unhealthy now; empty while healthy. Idle outside the trading window is
    healthy; in it, the collector must have a session, a feed that is not stalled, a beating
    heartbeat and room on the disk."""
    c = collector
    reasons = []
    if c.fatal is not None:
        reasons.append(f"stopping: {c.fatal}")
    if c.status is Status.STALLED:
        reasons.append(f"stalled: no trades on source {c.selector.name}")
    silent_after = max(SILENT_BEATS * c.settings.heartbeat_wall_s, SILENT_FLOOR_S)
    age = heartbeat_age_s(c)
    if age is not None and age > silent_after and c.state not in ("stopping", "stopped"):
        reasons.append(f"heartbeat: none for {age:.1f} s (limit {silent_after:.1f} s)")
    if c.writer.disk_low:
        reasons.append(f"disk: free space below the floor of {c.writer.min_free_bytes} bytes, trades refused")
    if c.state == "connected" and c.reporting.connected() == 0:
        reasons.append(f"feed: no session subscribed on source {c.selector.name}")
    if c.state in ("stopping", "stopped"):
        reasons.append(f"collector {c.state}")
    return reasons


def serve(collector: Collector, host: str, port: int) -> MetricsServer:
    """Start `/metrics` and `/health` for `collector` on host:port (0: a free port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CollectorMetrics(collector))
    return MetricsServer(registry, lambda: health_reasons(collector), host, port).start()
