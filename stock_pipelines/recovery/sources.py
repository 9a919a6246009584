"""Build the broker client, its shared rate limiter and its circuit breaker.

Settings, parsed from environment-style variables the caller passes (none is a secret except the
credentials, which are parsed separately, by `credentials_from`, when a client is built):
- STOCK_PIPELINES_BROKER: kis (default) or kiwoom
- KIS_BASE_URL / KIWOOM_BASE_URL: the REST endpoint (the demo points these at `sim exchange`)
- KIS_RATE_LIMIT_PER_S (default 20, a real account; set 2 for a KIS paper account),
  KIWOOM_RATE_LIMIT_PER_S (default 5)
- STOCK_PIPELINES_BROKER_PROCESSES (default 2): the fewest processes assumed to share that limit
  when Redis is unreachable (each then takes limit // max(this, the processes Redis last counted))
- KIS_APP_KEY, KIS_APP_SECRET / KIWOOM_APP_KEY, KIWOOM_SECRET_KEY: credentials
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis

from stock_pipelines.brokers.kis import KisClient, KisCredentials
from stock_pipelines.brokers.kiwoom import KiwoomClient, KiwoomCredentials
from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.ops import clock
from stock_pipelines.resilience.breaker import CircuitBreaker
from stock_pipelines.resilience.rate_limit import SharedRateLimiter
from stock_pipelines.resilience.state_store import RedisStateStore

BROKER_VAR = "STOCK_PIPELINES_BROKER"
PROCESSES_VAR, DEFAULT_PROCESSES = "STOCK_PIPELINES_BROKER_PROCESSES", 2
DEFAULTS = {
    "kis": ("KIS_BASE_URL", "KIS_RATE_LIMIT_PER_S", 20),
    "kiwoom": ("KIWOOM_BASE_URL", "KIWOOM_RATE_LIMIT_PER_S", 5),
}


@dataclass(frozen=True)
class BrokerSettings:
    broker: str
    base_url: str
    rate_limit_per_s: int
    processes: int = DEFAULT_PROCESSES

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BrokerSettings:
        broker = broker_name(env)
        url_var, limit_var, default_limit = DEFAULTS[broker]
        base_url = env.get(url_var, "").strip()
        if not base_url:
            raise BrokerAuthError(f"{url_var} is not set: the {broker} REST endpoint is unknown")
        limit = _positive_int(env, limit_var, default_limit, "calls a second")
        processes = _positive_int(env, PROCESSES_VAR, DEFAULT_PROCESSES, "processes")
        return cls(broker, base_url, limit, processes)


def broker_name(env: Mapping[str, str]) -> str:
    """`STOCK_PIPELINES_BROKER`: kis (default) or kiwoom."""
    broker = env.get(BROKER_VAR, "kis").strip().lower()
    if broker not in DEFAULTS:
        raise ValueError(f"{BROKER_VAR}={broker!r}: use kis or kiwoom")
    return broker


def credentials_from(broker: str, env: Mapping[str, str | None]) -> KisCredentials | KiwoomCredentials:
    """The broker's credentials from `env` (variable name -> value; see the module docstring)."""
    return KisCredentials.from_env(env) if broker == "kis" else KiwoomCredentials.from_env(env)


def _positive_int(env: Mapping[str, str], variable: str, default: int, unit: str) -> int:
    try:
        value = int(env.get(variable, default))
    except ValueError:
        raise ValueError(f"{variable} must be a whole number of {unit}") from None
    if value < 1:
        raise ValueError(f"{variable} must be at least 1")
    return value


class BreakerGate:
    """The executor's CallGate over the shared circuit breaker.

    The breaker's state lives in Redis. When Redis is unreachable the gate keeps a local count of
    consecutive failures (same threshold) instead of failing the step: the rate limiter has its
    own local fallback, refused credentials still stop the run (the executor does that), and the
    shared state catches up on the next call that reaches Redis.
    """

    def __init__(self, breaker: CircuitBreaker):
        self.breaker = breaker
        self.local_failures = 0
        self.redis_errors = 0

    def allow(self) -> bool:
        try:
            return self.breaker.try_acquire()
        except redis.RedisError:
            self.redis_errors += 1
            return self.local_failures < self.breaker.failure_threshold

    def on_success(self) -> None:
        self.local_failures = 0
        try:
            self.breaker.record_success()
        except redis.RedisError:
            self.redis_errors += 1

    def on_failure(self, error: BaseException) -> None:
        self.local_failures += 1
        try:
            self.breaker.record_failure(error, authorization=isinstance(error, BrokerAuthError))
        except redis.RedisError:
            self.redis_errors += 1


def breaker_for(broker: str, client: redis.Redis) -> CircuitBreaker:
    return CircuitBreaker(f"broker:{broker}", RedisStateStore(client))


def build_source(
    settings: BrokerSettings,
    credentials: KisCredentials | KiwoomCredentials,
    client: redis.Redis,
    token_dir: Path,
    now: Callable[[], datetime] | None = None,
) -> KisClient | KiwoomClient:
    limiter = SharedRateLimiter(client, f"broker:{settings.broker}", settings.rate_limit_per_s,
                                expected_processes=settings.processes)
    now = now or clock.now
    if settings.broker == "kis":
        return KisClient(settings.base_url, credentials, limiter, token_dir, today=now)
    return KiwoomClient(settings.base_url, credentials, limiter, token_dir, today=now)
