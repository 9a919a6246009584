"""What the collector knows of one shard (one WebSocket session's symbols) across its sources."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShardState:
    symbols: tuple[str, ...]
    last_ts: int | None = None  # newest execution time received for this shard's symbols
    pending: dict | None = None  # an open loss window, closed by the next trade
    first_ts: dict = field(default_factory=dict)  # source -> first trade time since its last subscribe
    last_by_source: dict = field(default_factory=dict)  # source -> newest trade time it delivered
    lag_s: float = 0.0  # receive time minus execution time of its newest trade, last time data came
    lag_at: float = 0.0  # clock time of that measurement
    connected: set = field(default_factory=set)  # sources with a subscribed link
