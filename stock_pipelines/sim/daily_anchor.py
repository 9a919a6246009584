"""Each symbol's closing price on every trading day, without generating any day's trades.

A symbol's closes follow one cheap daily process: a reference price and one log-return per
trading day, all drawn from a random stream seeded by (seed, symbol code) alone and summed over
the calendar; the price level is the reference price on `REFERENCE_DAY`, so the real symbols
trade near their reference prices in the years the project is used. Day D's intraday walk starts from the close of the trading day
before it and ends exactly at D's close, so days chain (D's closing print is D+1's previous
close) whatever order they are generated in, and generating one day needs no other day.
"""

from __future__ import annotations

import functools
import zlib
from datetime import date

import numpy as np

from stock_pipelines.sim.sessions import trading_day_number, trading_days_count
from stock_pipelines.sim.tick_grid import tick_round

DAILY_VOLATILITY = 0.018
MAX_DAILY_MOVE = 0.15  # log-return cap: consecutive closes stay well inside the +-30 % limit
MIN_PRICE = 1_000
REFERENCE_DAY = date(2026, 1, 2)  # a trading day: closes are relative to the close before it


@functools.lru_cache(maxsize=64)
def _path(seed: int, code: str, reference: int | None) -> tuple[float, np.ndarray]:
    """(reference price, log-return from the reference level to the close after each trading day)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, 0x414E43, zlib.crc32(code.encode())]))
    base = float(np.clip(rng.lognormal(np.log(20_000), 1.1), 1_100, 900_000))  # drawn always: same stream
    returns = np.clip(rng.normal(0.0, DAILY_VOLATILITY, trading_days_count()), -MAX_DAILY_MOVE, MAX_DAILY_MOVE)
    cumulative = np.concatenate(([0.0], np.cumsum(returns)))
    cumulative -= cumulative[trading_day_number(REFERENCE_DAY)]
    return (float(reference) if reference is not None else base), cumulative


def _close_at(reference: float, cumulative: np.ndarray, number: int) -> int:
    """The close after `number` trading days (number 0: the close before the calendar's first day)."""
    return tick_round(max(reference * float(np.exp(cumulative[number])), MIN_PRICE))


def day_closes(seed: int, code: str, day: date, reference: int | None = None) -> tuple[int, int]:
    """(previous close, close) of `code` on trading day `day`; `reference` pins a real symbol's level."""
    number = trading_day_number(day)
    base, cumulative = _path(seed, code, reference)
    return _close_at(base, cumulative, number), _close_at(base, cumulative, number + 1)
