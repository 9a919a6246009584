"""The soak's run directory: what the harness writes and `soak.figures` reads.

RUN/
- manifest.json  the run's parameters and where everything landed (`Manifest`);
- faults.jsonl   one `FaultRecord` a line, appended as each fault is injected, rewritten when it clears;
- alerts.jsonl   one line per webhook POST the local receiver got: {"received_wall", "body"};
- memory.json    {"<process kind>": peak RSS bytes};
- calls.json     the exchange's GET /admin/stats at the end.
Whole files are written atomically (atomic_files); the two .jsonl files are append-only logs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stock_pipelines.atomic_files import write_text

MANIFEST, FAULTS, ALERTS, MEMORY, CALLS = "manifest.json", "faults.jsonl", "alerts.jsonl", "memory.json", "calls.json"
PROCESS_KINDS = ("exchange", "collector", "dagster_daemon", "webserver", "redis", "harness")


@dataclass
class ExchangeParameters:
    seed: int
    symbols: int
    activity: float
    speed: float
    first_day: str
    night_speed: float | None = None   # None: `speed` day and night (a run directory from before the night speed)


@dataclass
class Manifest:
    seed: int
    days: list[str]
    quick: bool
    exchange_url: str
    exchange: ExchangeParameters
    redis_url: str
    dagster_home: str
    archive_dir: str
    lake_dir: str
    started_wall: float
    ended_wall: float | None = None
    wall_s: float | None = None
    phases: dict[str, float] | None = None   # wall seconds: startup (to the clock's release), days, drain

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict) -> Manifest:
        return cls(**{**document, "exchange": ExchangeParameters(**document["exchange"])})


@dataclass
class FaultRecord:
    id: str
    kind: str
    subject: str
    day: str
    injected_wall: float
    injected_exchange: str
    cleared_wall: float | None = None


@dataclass
class RunDirectory:
    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_manifest(self, manifest: Manifest) -> None:
        write_text(self.path / MANIFEST, json.dumps(manifest.to_json(), indent=2) + "\n")

    def manifest(self) -> Manifest:
        return Manifest.from_json(json.loads((self.path / MANIFEST).read_text()))

    def write_faults(self, records: list[FaultRecord]) -> None:
        """The whole fault log (a record's clearing time is filled in after it was first written)."""
        with self._lock:
            write_text(self.path / FAULTS, "".join(json.dumps(asdict(r)) + "\n" for r in records))

    def faults(self) -> list[FaultRecord]:
        return [FaultRecord(**json.loads(line)) for line in _lines(self.path / FAULTS)]

    def append_alert(self, received_wall: float, body) -> None:
        with self._lock, (self.path / ALERTS).open("a") as out:
            out.write(json.dumps({"received_wall": received_wall, "body": body}, ensure_ascii=False) + "\n")
            out.flush()

    def alerts(self) -> list[dict]:
        return [json.loads(line) for line in _lines(self.path / ALERTS)]

    def write_memory(self, peaks: dict[str, int]) -> None:
        write_text(self.path / MEMORY, json.dumps(peaks, indent=2) + "\n")

    def write_calls(self, stats: dict) -> None:
        write_text(self.path / CALLS, json.dumps(stats, indent=2) + "\n")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
