"""Collector heartbeats and lifecycle events in Redis, with the archive as the second source (no Dagster)."""

from stock_pipelines.heartbeat.archive_history import (
    ArchiveHistory,
    archive_collectors,
    history_from_archive,
    history_from_system_lines,
    up_intervals,
)
from stock_pipelines.heartbeat.model import (
    EventRecord,
    Heartbeat,
    LifecycleEvent,
    Status,
    UpInterval,
    intervals_from_beats,
    merge_intervals,
)
from stock_pipelines.heartbeat.publisher import HeartbeatPublisher, Snapshot
from stock_pipelines.heartbeat.store import HeartbeatStore

__all__ = [
    "ArchiveHistory",
    "EventRecord",
    "Heartbeat",
    "HeartbeatPublisher",
    "HeartbeatStore",
    "LifecycleEvent",
    "Snapshot",
    "Status",
    "UpInterval",
    "archive_collectors",
    "history_from_archive",
    "history_from_system_lines",
    "intervals_from_beats",
    "merge_intervals",
    "up_intervals",
]
