"""A rate limiter shared by every process through Redis, with a local fallback.

Guarantee: never more than `limit` grants in any window of `window` seconds (default 1 s).
It is a sliding-window *log*, not a counter: a fixed window lets 2 x limit through across a
boundary, and the approximate sliding counter can overshoot. The log is a sorted set of grant
times; one Lua script trims, counts and adds atomically, using the Redis server's clock, so
processes on different hosts (with different clocks) share one timeline. (`limits`'
MovingWindowRateLimiter is the same idea but stamps entries with each client's own clock and
only takes whole-second windows, hence this small script.)

`safety_margin` widens the window slightly (default 50 ms) so that a request leaving a client
a little after its grant (scheduling, network) still lands in a compliant window at the broker.

Every process that takes a shared grant registers in Redis (a sorted set of process ids stamped
with the server's time, in the same script), and learns how many processes took a grant in the
last `presence` seconds (default 60). When Redis raises a connection or timeout error, the
limiter falls back to a local sliding log at `limit // max(processes registered, expected_processes)`
per window (each process under its share, so all of them together stay under the limit), logs
that once, and tries Redis again every `recheck_after` seconds. `expected_processes` is the floor
for what the registry cannot know: a process that never reached Redis, or one that started
during the outage (`recovery.sources` reads it from STOCK_PIPELINES_BROKER_PROCESSES). The local
log also records this process's shared grants, so its own calls of the last window count against
its share at the switch. Known limits: for one window around the switch, the other processes'
shared grants are not visible, so up to limit + limit // processes calls can fall in that one
window; and processes beyond the registered count and `expected_processes` (several started
during the outage) each take a share the others did not set aside.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from stock_pipelines.redis_conn import key

log = logging.getLogger(__name__)

# KEYS[1]: the log (sorted set), KEYS[2]: the processes taking grants (sorted set).
# ARGV: limit, window in microseconds, a unique member, this process's id, presence in microseconds.
# Returns {1, grant time in us, processes} or {0, microseconds until the oldest entry leaves
# the window, processes}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local presence = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - presence)
redis.call('PEXPIRE', KEYS[2], math.floor(presence / 1000) + 1000)
local processes = redis.call('ZCARD', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return {1, now, processes}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, processes}
"""


class LocalRateLimiter:
    """The same sliding-window log in one process, with an injectable clock (seconds)."""

    def __init__(self, limit: int, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"need limit >= 1 and window > 0, not {limit} / {window}")
        self.limit, self.window, self.clock = limit, window, clock
        self._grants: collections.deque[float] = collections.deque()

    def try_acquire(self) -> tuple[bool, float]:
        """(granted, seconds to wait before a slot frees up when not granted)."""
        now = self._trim()
        if len(self._grants) < self.limit:
            self._grants.append(now)
            return True, 0.0
        return False, self._grants[0] + self.window - now

    def record(self) -> None:
        """Log a call granted elsewhere (by Redis), so a switch to this log counts it."""
        self._grants.append(self._trim())

    def _trim(self) -> float:
        now = self.clock()
        while self._grants and self._grants[0] <= now - self.window:
            self._grants.popleft()
        return now


@dataclass
class Grant:
    at: float  # epoch seconds of the grant (Redis server time, or local time in fallback)
    shared: bool  # False when granted by the local fallback


class SharedRateLimiter:
    """`acquire(timeout)` blocks until a call may go out; raises TimeoutError if not in time.

    Satisfies `brokers.model.RateLimiter`.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        limit: int,
        *,
        window: float = 1.0,
        safety_margin: float = 0.05,
        expected_processes: int = 1,
        presence: float = 60.0,
        recheck_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0 or safety_margin < 0 or expected_processes < 1 or presence <= 0:
            raise ValueError(
                "need limit >= 1, window > 0, safety_margin >= 0, expected_processes >= 1, presence > 0"
            )
        self.client, self.name, self.limit = client, name, limit
        self.window_us = int(round((window + safety_margin) * 1_000_000))
        self.clock, self.wall_clock, self.sleep = clock, wall_clock, sleep
        self.recheck_after = recheck_after
        self.expected_processes = expected_processes
        self.processes_registered = 0  # as Redis last counted them (this one included); 0: never reached
        self.presence_us = int(round(presence * 1_000_000))
        self.local = LocalRateLimiter(self.fallback_share(), window + safety_margin, clock)
        self.fallback_grants = 0
        self._key = key("ratelimit", name)
        self._processes_key = key("ratelimit", name, "processes")
        self._script = client.register_script(_ACQUIRE)
        self._fallback_since: float | None = None
        self._ids = itertools.count()
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._process = f"{socket.gethostname()}-{self._token}"  # one limiter, one share
        self._rng = random.Random()

    def fallback_share(self) -> int:
        """This process's grants per window while Redis is unreachable."""
        return max(1, self.limit // max(self.processes_registered, self.expected_processes))

    @property
    def in_fallback(self) -> bool:
        return self._fallback_since is not None

    def acquire(self, timeout: float | None = None) -> Grant:
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            granted, wait, grant = self._try_once()
            if granted:
                return grant
            if deadline is not None and self.clock() + wait > deadline:
                raise TimeoutError(
                    f"rate limiter {self.name!r}: no slot within {timeout} s ({self.limit} per window)"
                )
            # a little jitter so waiting processes do not all retry in the same instant
            self.sleep(wait + self._rng.uniform(0, 0.002))

    def _try_once(self) -> tuple[bool, float, Grant | None]:
        if self._fallback_since is not None and self.clock() - self._fallback_since < self.recheck_after:
            return self._local_once()
        try:
            granted, value, processes = self._script(
                keys=[self._key, self._processes_key],
                args=[self.limit, self.window_us, f"{self._token}-{next(self._ids)}", self._process,
                      self.presence_us],
            )
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if self._fallback_since is None:
                self.local.limit = self.fallback_share()
                log.warning(
                    "rate limiter %r: Redis unreachable (%s); falling back to a local limit of %d per %.2f s "
                    "(%d per window shared by %s processes)",
                    self.name, type(error).__name__, self.local.limit, self.local.window, self.limit,
                    f"{self.processes_registered} registered" if self.processes_registered
                    >= self.expected_processes else f"at least {self.expected_processes} expected",
                )
            self._fallback_since = self.clock()
            return self._local_once()
        self.processes_registered = int(processes)
        if self._fallback_since is not None:
            log.warning("rate limiter %r: Redis is back; shared limiting resumes", self.name)
            self._fallback_since = None
        if granted:
            self.local.record()
            return True, 0.0, Grant(at=value / 1e6, shared=True)
        return False, max(value, 0) / 1e6, None

    def _local_once(self) -> tuple[bool, float, Grant | None]:
        granted, wait = self.local.try_acquire()
        if granted:
            self.fallback_grants += 1
            return True, 0.0, Grant(at=self.wall_clock(), shared=False)
        return False, wait, None
