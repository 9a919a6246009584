"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

delay(attempt) = uniform(0, min(cap, base * 2**attempt)): spreads retries from many workers
instead of synchronising them. Seedable: pass a `random.Random(seed)` for reproducible delays.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from stock_pipelines.resilience.errors import is_retryable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    base: float = 5.0  # seconds before the first retry, at most
    cap: float = 600.0  # never wait longer than this

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap, not base={self.base} cap={self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The upper bound for retry number `attempt` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt}")
        return min(self.cap, self.base * 2 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0.0, self.ceiling(attempt))


RECOVERY_BACKOFF = Backoff(base=5.0, cap=600.0)  # 5 s doubling to 10 min
CALL_BACKOFF = Backoff(base=0.5, cap=10.0)  # one broker call inside a run


class FullJitterWait(tenacity.wait.wait_base):
    """A tenacity wait strategy using `Backoff` with an injectable random source."""

    def __init__(self, backoff: Backoff = CALL_BACKOFF, rng: random.Random | None = None) -> None:
        self.backoff, self.rng = backoff, rng or random.Random()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.backoff.delay(retry_state.attempt_number - 1, self.rng)


def retrying(
    max_attempts: int = 5,
    backoff: Backoff = CALL_BACKOFF,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[BaseException], None] | None = None,
) -> tenacity.Retrying:
    """Retry EGW00201, 5xx and timeouts with full-jitter backoff; other errors and the last
    failure are re-raised unchanged. `on_retry` sees each error that is about to be retried.

        for attempt in retrying():
            with attempt:
                client.call(...)
    """
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=FullJitterWait(backoff, rng),
        retry=tenacity.retry_if_exception(retry_on),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: _before_sleep(state, max_attempts, on_retry),
    )


def _before_sleep(state: tenacity.RetryCallState, max_attempts: int,
                  on_retry: Callable[[BaseException], None] | None) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.info("retry %d/%d in %.2f s after %s", state.attempt_number, max_attempts,
             state.next_action.sleep if state.next_action else 0.0, type(error).__name__)
    if on_retry is not None and error is not None:
        on_retry(error)
