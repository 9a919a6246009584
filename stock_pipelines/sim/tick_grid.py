"""The KRX price grid: tick sizes for stocks (2023 rules) and the daily +-30 % limit."""

from __future__ import annotations

import numpy as np

# Tick sizes since 2023-01-25: price below the bound -> tick.
TICK_BOUNDS = np.array([2_000, 5_000, 20_000, 50_000, 200_000, 500_000], dtype=np.int64)
TICK_SIZES = np.array([1, 5, 10, 50, 100, 500, 1_000], dtype=np.int64)
PRICE_LIMIT = 0.30  # daily limit: +-30 % of the previous close


def tick_size(price: np.ndarray) -> np.ndarray:
    return TICK_SIZES[np.searchsorted(TICK_BOUNDS, price, side="right")]


def to_tick_grid(price: np.ndarray) -> np.ndarray:
    """Round to the nearest price on the grid (bounds are multiples of both neighbouring ticks)."""
    price = np.asarray(price, dtype=np.float64)
    ticks = tick_size(price.astype(np.int64))
    return (np.rint(price / ticks) * ticks).astype(np.int64)


def tick_round(price: float) -> int:
    tick = int(TICK_SIZES[np.searchsorted(TICK_BOUNDS, int(price), side="right")])
    return int(round(price / tick)) * tick


def price_limits(prev_close: int) -> tuple[int, int]:
    """Lower and upper daily limit: +-30 % of the previous close, cut inward to the tick grid."""
    high, low = prev_close * (1 + PRICE_LIMIT), prev_close * (1 - PRICE_LIMIT)
    high_tick, low_tick = (int(t) for t in tick_size(np.array([int(high), int(low)])))
    return int(-(-low // low_tick) * low_tick), int(high // high_tick * high_tick)
