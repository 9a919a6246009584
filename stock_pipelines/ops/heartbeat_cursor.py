"""The heartbeat sensor's cursor: the event-stream position, what it knows of each collector, the
windows waiting to launch and the run keys launched, as one versioned JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from stock_pipelines.ops.recovery_window import Window

CURSOR_VERSION = 1
LAUNCHED_KEPT = 500  # run keys remembered, so a retry handed over twice launches once


@dataclass
class CollectorState:
    down_since: str | None = None  # ISO; the last activity before the outage
    recovered_until: str | None = None  # ISO; windows up to here were handed over
    last_beat: str | None = None


@dataclass
class CursorState:
    stream: str = "0-0"
    collectors: dict[str, CollectorState] = field(default_factory=dict)
    pending: list[Window] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "stream": self.stream,
                "collectors": {name: asdict(state) for name, state in sorted(self.collectors.items())},
                "pending": [w.to_json() for w in self.pending],
                "launched": self.launched[-LAUNCHED_KEPT:],
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str | None) -> CursorState:
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"heartbeat sensor cursor version {data.get('v')!r} is not {CURSOR_VERSION}")
        return cls(
            stream=data["stream"],
            collectors={name: CollectorState(**state) for name, state in data["collectors"].items()},
            pending=[Window.from_json(w) for w in data["pending"]],
            launched=list(data["launched"]),
        )
