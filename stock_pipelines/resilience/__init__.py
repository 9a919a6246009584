"""Rate limiting, circuit breakers, backoff, dormant mode and kill switches (no Dagster).

Pure logic with injectable clocks; shared state in Redis through small interfaces.
"""

from stock_pipelines.resilience.backoff import (
    CALL_BACKOFF,
    RECOVERY_BACKOFF,
    Backoff,
    FullJitterWait,
    retrying,
)
from stock_pipelines.resilience.breaker import (
    TRANSITIONS,
    CircuitBreaker,
    CircuitOpenError,
    IllegalTransition,
    Snapshot,
    State,
)
from stock_pipelines.resilience.dormant import Decision, DormantGuard, DormantState
from stock_pipelines.resilience.errors import is_authorization_failure, is_retryable
from stock_pipelines.resilience.flags import (
    AUTO_RECOVERY,
    FLAG_NAMES,
    HEARTBEAT_MONITORING,
    PREFLIGHT,
    FeatureFlags,
    FlagState,
    FlagValueError,
)
from stock_pipelines.resilience.rate_limit import Grant, LocalRateLimiter, SharedRateLimiter
from stock_pipelines.resilience.state_store import MemoryStateStore, RedisStateStore, StateStore

__all__ = [
    "AUTO_RECOVERY",
    "CALL_BACKOFF",
    "FLAG_NAMES",
    "HEARTBEAT_MONITORING",
    "PREFLIGHT",
    "RECOVERY_BACKOFF",
    "TRANSITIONS",
    "Backoff",
    "CircuitBreaker",
    "CircuitOpenError",
    "Decision",
    "DormantGuard",
    "DormantState",
    "FeatureFlags",
    "FlagState",
    "FlagValueError",
    "FullJitterWait",
    "Grant",
    "IllegalTransition",
    "LocalRateLimiter",
    "MemoryStateStore",
    "RedisStateStore",
    "SharedRateLimiter",
    "Snapshot",
    "State",
    "StateStore",
    "is_authorization_failure",
    "is_retryable",
    "retrying",
]
