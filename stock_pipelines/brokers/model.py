"""What every broker client returns, and the errors it raises."""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import polars as pl

# The same bar schema as tick_minute_bars, so recovered and tick-derived bars stack.
BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "minute": pl.Datetime("us", "UTC"),
    "open": pl.Int64(),
    "high": pl.Int64(),
    "low": pl.Int64(),
    "close": pl.Int64(),
    "volume": pl.Int64(),
    "trades": pl.UInt32(),  # trades in the bar; null for broker bars (REST does not say)
    "source": pl.String(),
}


class BrokerError(Exception):
    """A broker call failed in a way the caller should see."""


class BrokerAuthError(BrokerError):
    """Credentials missing, wrong or revoked: retrying cannot help; a person must act."""


class BrokerRateLimited(BrokerError):
    """The broker refused the call for exceeding its rate limit (KIS EGW00201, Kiwoom 1700)."""


class BrokerUnavailable(BrokerError):
    """5xx, timeouts, connection errors: worth a retry with backoff."""


@dataclass
class BarFetch:
    """The bars one window fetch produced, with the bookkeeping a recovery report needs."""

    bars: pl.DataFrame
    calls: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> rows refused

    def __post_init__(self) -> None:
        self.bars = self.bars.select(list(BAR_SCHEMA))


class RateLimiter(Protocol):
    def slot(self, timeout: float | None = None) -> AbstractContextManager[object]:
        """Around one call (request and reply): block until it may be made; raise TimeoutError if
        not possible in time."""


class MinuteBarSource(Protocol):
    name: str

    def minute_bars(self, symbol: str, day: date, start: datetime, end: datetime) -> BarFetch:
        """Bars of `symbol` whose minute lies in [start, end) on trading day `day`."""


@runtime_checkable
class DayVolumeSource(Protocol):
    """A broker that reports a symbol's traded volume for a day (KIS FHKST03010100)."""

    name: str

    def day_volume(self, symbol: str, day: date) -> int | None:
        """Shares traded in `symbol` on `day` as the broker reports them; None: no trading reported."""
