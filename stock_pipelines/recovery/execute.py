"""Run a recovery plan against a broker: bounded, observable, and honest about what is left.

Windows are fetched most-active-first by a few threads, so the shared rate limiter (not the
round-trip latency) sets the pace. A broker that refuses credentials stops the whole run at
once; a broker that keeps failing trips the circuit breaker and the rest of the plan is
reported as not recovered, with the reason, instead of being retried forever.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA, BarFetch, BrokerAuthError, BrokerError, MinuteBarSource
from stock_pipelines.recovery.plan import FetchWindow


class CallGate(Protocol):
    """What the executor needs of a circuit breaker."""

    def allow(self) -> bool: ...

    def on_success(self) -> None: ...

    def on_failure(self, error: BaseException) -> None: ...


class AlwaysAllow:
    def allow(self) -> bool:
        return True

    def on_success(self) -> None:
        pass

    def on_failure(self, error: BaseException) -> None:
        pass


@dataclass(frozen=True)
class WindowOutcome:
    window: FetchWindow
    status: str  # "recovered" | "failed" | "skipped"
    bars: int = 0
    calls: int = 0
    detail: str = ""


@dataclass
class RecoveryResult:
    bars: pl.DataFrame
    outcomes: list[WindowOutcome] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None  # why the run stopped early, if it did

    @property
    def calls(self) -> int:
        return sum(o.calls for o in self.outcomes)

    @property
    def unrecovered(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status != "recovered"]


def execute_plan(
    plan: list[FetchWindow],
    source: MinuteBarSource,
    day: date,
    gate: CallGate | None = None,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> RecoveryResult:
    gate = gate or AlwaysAllow()
    stop = threading.Event()
    stopped: list[str] = []
    outcomes: list[WindowOutcome] = []
    frames: list[pl.DataFrame] = []
    rejected: Counter[str] = Counter()

    def fetch(window: FetchWindow) -> BarFetch:
        return source.minute_bars(window.symbol, day, window.start, window.end)

    pending: dict[Future[BarFetch], FetchWindow] = {}
    queue = list(plan)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="recovery") as pool:
        while queue or pending:
            while queue and len(pending) < workers and not stop.is_set():
                if not gate.allow():
                    stopped.append(f"circuit breaker for {source.name} is open")
                    stop.set()
                    break
                window = queue.pop(0)
                pending[pool.submit(fetch, window)] = window
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                window = pending.pop(future)
                try:
                    fetched = future.result()
                except BrokerAuthError as error:
                    gate.on_failure(error)
                    stopped.append(f"{source.name} refused the credentials: {error}")
                    stop.set()
                    outcomes.append(WindowOutcome(window, "failed", detail=str(error)))
                except BrokerError as error:
                    gate.on_failure(error)
                    outcomes.append(WindowOutcome(window, "failed", detail=str(error)))
                else:
                    gate.on_success()
                    frames.append(fetched.bars)
                    rejected.update(fetched.rejected)
                    outcomes.append(WindowOutcome(window, "recovered", fetched.bars.height, fetched.calls))
                if progress is not None:
                    progress(len(outcomes), len(plan))
            if stop.is_set() and not pending:
                break
    outcomes.extend(WindowOutcome(w, "skipped", detail=stopped[0]) for w in queue)
    bars = pl.concat(frames) if frames else pl.DataFrame(schema=BAR_SCHEMA)
    bars = bars.unique(subset=["symbol", "minute"], keep="first", maintain_order=True).sort("symbol", "minute")
    return RecoveryResult(bars=bars, outcomes=outcomes, rejected=rejected, stopped=stopped[0] if stopped else None)
