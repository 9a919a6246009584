"""Kill switches, read at every evaluation (never cached), from the deployment and Redis.

Rule: a flag is on unless either source turns it off. Off wins:
- the environment variable (deployment-time) set to a false value disables the feature, and
  nothing at run time can re-enable it; the entry points and `RedisResource` read the variables
  into the process's Redis settings (`redis_conn.RedisSettings.switches`);
- otherwise the Redis key ``<prefix>:flags:<NAME>`` (run time: `FeatureFlags.set`) decides;
- neither set: on (the working default).

Values: 1/true/on/yes/enabled and 0/false/off/no/disabled, any case. Anything else, the empty
string included, raises `FlagValueError`: a typo in a kill switch must not be guessed at.
If Redis cannot be read, the flag reads as off (`source="redis_unreachable"`): when the state
of a kill switch is unknown, automation stays still.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

from stock_pipelines import redis_conn
from stock_pipelines.redis_conn import key

AUTO_RECOVERY = "FEATURE_AUTO_RECOVERY_ENABLED"
HEARTBEAT_MONITORING = "FEATURE_HEARTBEAT_MONITORING_ENABLED"
PREFLIGHT = "FEATURE_PREFLIGHT_ENABLED"
COLLECTORS = "FEATURE_COLLECTORS_ENABLED"  # the fleet supervisor (stock_pipelines/fleet/)
FLAG_NAMES = (AUTO_RECOVERY, HEARTBEAT_MONITORING, PREFLIGHT, COLLECTORS)

TRUE_VALUES = frozenset({"1", "true", "on", "yes", "enabled"})
FALSE_VALUES = frozenset({"0", "false", "off", "no", "disabled"})


class FlagValueError(ValueError):
    pass


@dataclass(frozen=True)
class FlagState:
    name: str
    enabled: bool
    source: str  # "env", "redis", "default" or "redis_unreachable"
    detail: str = ""


def parse_flag(name: str, raw: str, where: str) -> bool:
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise FlagValueError(
        f"{name}={raw!r} in {where} is neither on ({'/'.join(sorted(TRUE_VALUES))}) "
        f"nor off ({'/'.join(sorted(FALSE_VALUES))})"
    )


class FeatureFlags:
    """`environ`: the deployment's switches; None: those of the process's Redis settings."""

    def __init__(self, client: redis.Redis | None, environ: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.environ = redis_conn.current().switches if environ is None else environ

    def state(self, name: str) -> FlagState:
        _check_name(name)
        raw_env = self.environ.get(name)
        if raw_env is not None and not parse_flag(name, raw_env, "the environment"):
            return FlagState(name, False, "env", f"{name}={raw_env}")
        if self.client is not None:
            try:
                raw_redis = self.client.get(key("flags", name))
            except redis.RedisError as error:
                return FlagState(name, False, "redis_unreachable", f"{type(error).__name__}: {error}")
            if raw_redis is not None:
                raw_redis = raw_redis.decode() if isinstance(raw_redis, bytes) else raw_redis
                return FlagState(name, parse_flag(name, raw_redis, "Redis"), "redis", f"{name}={raw_redis}")
        if raw_env is not None:
            return FlagState(name, True, "env", f"{name}={raw_env}")
        return FlagState(name, True, "default")

    def enabled(self, name: str) -> bool:
        return self.state(name).enabled

    def set(self, name: str, enabled: bool) -> None:
        """Flip a flag at run time (it cannot override an environment variable set to off)."""
        _check_name(name)
        if self.client is None:
            raise RuntimeError("no Redis client: run-time flags need Redis")
        self.client.set(key("flags", name), "true" if enabled else "false")

    def clear(self, name: str) -> None:
        _check_name(name)
        if self.client is not None:
            self.client.delete(key("flags", name))


def _check_name(name: str) -> None:
    if name not in FLAG_NAMES:
        raise FlagValueError(f"unknown feature flag {name!r}; known: {', '.join(FLAG_NAMES)}")
