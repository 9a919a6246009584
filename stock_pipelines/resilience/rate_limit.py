"""A rate limiter shared by every process through Redis, with a local fallback.

Guarantee: never more than `limit` calls in any window of `window` seconds (default 1 s), as the
broker counts them (KIS and the simulator: per app key and wall-clock second). It is a
sliding-window *log*, not a counter: a fixed window lets 2 x limit through across a boundary,
and the approximate sliding counter can overshoot. The log is a sorted set; one Lua script
trims, counts and adds atomically, using the Redis server's clock, so processes on different
hosts (with different clocks) share one timeline. (`limits`' MovingWindowRateLimiter is the
same idea but stamps entries with each client's own clock and only takes whole-second windows,
and cannot move an entry to the time its call landed, hence this small script.)

Why a call is logged at the time its reply came back (`slot()`), not at its grant: the broker
counts a call when it reaches it, which is some time after the grant (the thread is scheduled,
the request is built and sent, the server's loop picks it up). On a loaded machine that delay
varies by more than any fixed margin: the demo's calls, granted at most `limit` in any 1.05 s,
reached the simulator 21 in one of its seconds. So a call holds its slot from the grant until
its reply (logged `in_flight` seconds ahead, the longest a call may take) and is then logged at
the reply's time. The broker's count of call i lies between its grant and its reply; a new grant
at g sees every call whose reply came after g - window (or is still out), and any `limit` + 1
calls that one broker second counts include a last-granted one whose grant would have seen the
other `limit`: so no broker second gets more, whatever the delays. The cost is one more Redis
round trip a call and each call's latency added to its slot's hold. `acquire()` alone logs the
grant time (for callers with nothing to send).

`safety_margin` widens the window slightly (default 50 ms): clock skew between the Redis host
and the broker, and the broker's own timing of a second.

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
window; processes beyond the registered count and `expected_processes` (several started
during the outage) each take a share the others did not set aside; and the local log stamps its
grants, not the replies (its share leaves room under the limit).
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from stock_pipelines.redis_conn import key

log = logging.getLogger(__name__)

# KEYS[1]: the log (sorted set), KEYS[2]: the processes taking grants (sorted set).
# ARGV: limit, window in microseconds, a unique member, this process's id, presence in microseconds,
# hold in microseconds (the entry is logged that far ahead until released; 0: at the grant).
# Returns {1, grant time in us, processes} or {0, microseconds until the oldest entry leaves
# the window, processes}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local presence = tonumber(ARGV[5])
local hold = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - presence)
redis.call('PEXPIRE', KEYS[2], math.floor(presence / 1000) + 1000)
local processes = redis.call('ZCARD', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
  local ttl = math.floor((window + hold) / 1000) + 1000
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return {1, now, processes}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, processes}
"""

# KEYS[1]: the log; ARGV[1]: the member. A call's reply is in: log it now (if still logged).
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return now
"""

# while every slot is held by a call still out, when one frees is unknown: ask again this often
IN_FLIGHT_POLL_S = 0.01


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
    member: str = ""  # its entry in the shared log


class SharedRateLimiter:
    """`with limiter.slot(timeout):` around one call (the request and its reply): blocks until it
    may go out, raises TimeoutError if not in time. Satisfies `brokers.model.RateLimiter`."""

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
        in_flight: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (limit < 1 or window <= 0 or safety_margin < 0 or expected_processes < 1 or presence <= 0
                or in_flight <= 0):
            raise ValueError("need limit >= 1, window > 0, safety_margin >= 0, expected_processes >= 1, "
                             "presence > 0, in_flight > 0")
        self.client, self.name, self.limit = client, name, limit
        self.window_us = int(round((window + safety_margin) * 1_000_000))
        self.clock, self.wall_clock, self.sleep = clock, wall_clock, sleep
        self.recheck_after = recheck_after
        self.expected_processes = expected_processes
        self.processes_registered = 0  # as Redis last counted them (this one included); 0: never reached
        self.presence_us = int(round(presence * 1_000_000))
        # the longest a call may take (the clients' HTTP timeouts are shorter): an entry whose
        # process died before its reply frees its slot this long after the grant
        self.in_flight_us = int(round(in_flight * 1_000_000))
        self.local = LocalRateLimiter(self.fallback_share(), window + safety_margin, clock)
        self.fallback_grants = 0
        self._key = key("ratelimit", name)
        self._processes_key = key("ratelimit", name, "processes")
        self._script = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
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

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[Grant]:
        """One call: its slot is held from the grant until the block ends (the reply is in), and
        counted from then on for a window."""
        grant = self._acquire(timeout, self.in_flight_us)
        try:
            yield grant
        finally:
            self._released(grant)

    def acquire(self, timeout: float | None = None) -> Grant:
        """A slot logged at its grant: for a caller whose call leaves at once (see the docstring)."""
        return self._acquire(timeout, 0)

    def _acquire(self, timeout: float | None, hold_us: int) -> Grant:
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            granted, wait, grant = self._try_once(hold_us)
            if granted:
                return grant
            if deadline is not None and self.clock() + wait > deadline:
                raise TimeoutError(
                    f"rate limiter {self.name!r}: no slot within {timeout} s ({self.limit} per window)"
                )
            # a little jitter so waiting processes do not all retry in the same instant
            self.sleep(wait + self._rng.uniform(0, 0.002))

    def _released(self, grant: Grant) -> None:
        if not grant.shared:
            return
        try:
            self._release(keys=[self._key], args=[grant.member])
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the entry stays logged `in_flight` ahead of its grant: later, never earlier

    def _try_once(self, hold_us: int) -> tuple[bool, float, Grant | None]:
        if self._fallback_since is not None and self.clock() - self._fallback_since < self.recheck_after:
            return self._local_once()
        try:
            member = f"{self._token}-{next(self._ids)}"
            granted, value, processes = self._script(
                keys=[self._key, self._processes_key],
                args=[self.limit, self.window_us, member, self._process, self.presence_us, hold_us],
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
            return True, 0.0, Grant(at=value / 1e6, shared=True, member=member)
        if value > self.window_us:  # every slot held by a call still out
            return False, IN_FLIGHT_POLL_S, None
        return False, max(value, 0) / 1e6, None

    def _local_once(self) -> tuple[bool, float, Grant | None]:
        granted, wait = self.local.try_acquire()
        if granted:
            self.fallback_grants += 1
            return True, 0.0, Grant(at=self.wall_clock(), shared=False)
        return False, wait, None
