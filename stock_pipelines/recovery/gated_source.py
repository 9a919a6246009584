"""A broker source whose every call goes through a circuit breaker (a `CallGate`).

The recovery executor asks its gate itself; the quality checks' sample and day volumes call the
source one symbol at a time, so the source asks: a call the breaker refuses is not made and
raises `BrokerUnavailable` (listed as failed, like any unanswered call), and every answer or
broker error is reported to the breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from stock_pipelines.brokers.model import (
    BarFetch,
    BrokerError,
    BrokerUnavailable,
    DayVolumeSource,
    MinuteBarSource,
)
from stock_pipelines.recovery.execute import CallGate

T = TypeVar("T")


class GatedSource:
    def __init__(self, source: MinuteBarSource, gate: CallGate) -> None:
        self.source, self.gate = source, gate
        self.name = source.name

    def minute_bars(self, symbol: str, day: date, start: datetime, end: datetime) -> BarFetch:
        return self._through_gate(lambda: self.source.minute_bars(symbol, day, start, end))

    def _through_gate(self, call: Callable[[], T]) -> T:
        if not self.gate.allow():
            raise BrokerUnavailable(f"circuit breaker for {self.name} is open: call not made")
        try:
            answer = call()
        except BrokerError as error:
            self.gate.on_failure(error)
            raise
        self.gate.on_success()
        return answer

    def __getattr__(self, name: str):
        # the client's bookkeeping (calls, retries, limiter) stays readable through the wrapper
        return getattr(self.source, name)


class GatedDayVolumeSource(GatedSource):
    def day_volume(self, symbol: str, day: date) -> int | None:
        return self._through_gate(lambda: self.source.day_volume(symbol, day))


def gated(source: MinuteBarSource, gate: CallGate) -> GatedSource:
    """`source` behind `gate`, still a `DayVolumeSource` when `source` is one."""
    if isinstance(source, DayVolumeSource):
        return GatedDayVolumeSource(source, gate)
    return GatedSource(source, gate)
