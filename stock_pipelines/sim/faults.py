"""Faults the exchange can be told to show at run time (POST /admin/faults), for chaos tests.

Several modes can be active at once; posting a mode replaces that mode's parameters, posting
{"mode": "none"} clears them all and {"mode": X, "enabled": false} clears one. Whether a call
is hit is drawn from a seeded generator, so a run with the same calls hits the same ones.

Every mode applies to one broker or both: `"target": "kis" | "kiwoom" | "all"` (default all), so
one broker's WebSocket can drop, stall or refuse its credentials while the other's streams.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

REST_MODES = ("http500", "latency", "egw00201", "unauthorized")
WS_MODES = ("drop_ws", "stall_ws")
MODES = (*REST_MODES, *WS_MODES)
TARGETS = ("all", "kis", "kiwoom")


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    mode: str
    probability: float = 1.0  # share of calls hit (REST modes)
    latency_ms: int = 0  # latency mode: added delay before the answer
    target: str = "all"  # which broker's endpoints and WebSocket: kis, kiwoom or all


@dataclass
class Faults:
    seed: int = 0
    active: dict[str, Fault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def apply(self, request: dict) -> dict[str, dict]:
        """Apply one admin request; return the active faults."""
        if not isinstance(request, dict) or "mode" not in request:
            raise FaultError('expected a JSON object with "mode"')
        mode = request["mode"]
        with self._lock:
            if mode == "none":
                self.active.clear()
            elif mode not in MODES:
                raise FaultError(f"unknown fault mode {mode!r}: use one of none, {', '.join(MODES)}")
            elif request.get("enabled", True) is False:
                self.active.pop(mode, None)
            else:
                self.active[mode] = _parse(mode, request)
            return self.describe_locked()

    def describe(self) -> dict[str, dict]:
        with self._lock:
            return self.describe_locked()

    def describe_locked(self) -> dict[str, dict]:
        return {mode: fault.__dict__ for mode, fault in self.active.items()}

    def rest_hits(self, broker: str) -> list[Fault]:
        """The REST faults that hit this call (latency first, then at most one failure)."""
        with self._lock:
            hits = []
            for mode in REST_MODES:
                fault = self.active.get(mode)
                if fault is None or fault.target not in ("all", broker):
                    continue
                if fault.probability >= 1.0 or self._random.random() < fault.probability:
                    hits.append(fault)
            return hits

    def is_active(self, mode: str, broker: str | None = None) -> bool:
        """Whether `mode` is on (for `broker`'s endpoints when given)."""
        fault = self.active.get(mode)
        return fault is not None and (broker is None or fault.target in ("all", broker))


def _parse(mode: str, request: dict) -> Fault:
    try:
        probability = float(request.get("probability", 1.0))
        latency_ms = int(request.get("latency_ms", 500 if mode == "latency" else 0))
    except (TypeError, ValueError) as error:
        raise FaultError(f"bad fault parameter: {error}") from None
    target = request.get("target", "all")
    if not 0.0 <= probability <= 1.0:
        raise FaultError(f"probability must be in 0..1, not {probability}")
    if latency_ms < 0:
        raise FaultError(f"latency_ms must be >= 0, not {latency_ms}")
    if target not in TARGETS:
        raise FaultError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    return Fault(mode=mode, probability=probability, latency_ms=latency_ms, target=target)
