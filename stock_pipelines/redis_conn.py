"""The project's Redis connection: `REDIS_URL`, or an embedded server the project starts itself.

The process's Redis settings (`RedisSettings`) are values: the command entry points and the
Dagster code location read them from the environment once (`settings.configure_process`), and
`RedisResource` lays its fields over them before a step or sensor uses Redis. Every key and
client of the process follows the settings configured last (`configure`).

- `REDIS_URL` set (``redis://host:6379/0``, ``unix:///run/redis.sock``): that server is used.
- `REDIS_URL` unset: the embedded server under ``<STOCK_PIPELINES_DATA_DIR>/redis/``
  (`embedded_redis`: started on demand, found by every process with the same data dir, stopped
  by the command that started it or, when others still use it, once it has been idle).
  `embedded_redis_url()` gives the URL to hand to a child process as its `REDIS_URL`.

Every key lives under one prefix, `STOCK_PIPELINES_REDIS_PREFIX` (default ``sp``): build keys
with `key(...)`, never by hand. The deployment's kill switches (`FEATURE_*`, see
`resilience.flags`) override flags kept in Redis, so they travel with these settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from stock_pipelines import embedded_redis
from stock_pipelines.settings import DEFAULT_DATA_DIR, Settings

ENV_URL = "REDIS_URL"
ENV_PREFIX = "STOCK_PIPELINES_REDIS_PREFIX"
DEFAULT_PREFIX = "sp"
SWITCH_PREFIX = "FEATURE_"  # the deployment's kill switches (resilience.flags.FLAG_NAMES)


@dataclass(frozen=True)
class RedisSettings:
    """Where the process's Redis is and how its keys are named."""

    url: str | None = None  # None: the embedded server under `data_dir`
    prefix: str = DEFAULT_PREFIX
    data_dir: Path | None = None  # the embedded server's home: <data dir>/redis; None: ./data
    idle_s: float = embedded_redis.DEFAULT_IDLE_S  # the embedded server stops after this long unused
    switches: Mapping[str, str] = field(default_factory=dict)  # FEATURE_* set by the deployment

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() or c == ":" for c in self.prefix):
            raise ValueError(
                f"{ENV_PREFIX}={self.prefix!r} is not a valid key prefix (non-empty, no ':' or spaces)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        """The settings a deployment's variables give (names and defaults as documented)."""
        prefix = env.get(ENV_PREFIX)
        return cls(
            url=env.get(ENV_URL) or None,
            prefix=DEFAULT_PREFIX if prefix is None else prefix,
            data_dir=Settings.from_env(env).data_dir,
            idle_s=embedded_redis.parse_idle_s(env.get(embedded_redis.ENV_IDLE_S)),
            switches={name: raw for name, raw in env.items() if name.startswith(SWITCH_PREFIX)},
        )

    def embedded_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else Path(DEFAULT_DATA_DIR).resolve()


_current = RedisSettings()
_clients: dict[tuple[str, int], redis.Redis] = {}


def configure(new: RedisSettings) -> RedisSettings:
    """Make `new` the process's Redis settings; returns the previous ones."""
    global _current
    previous, _current = _current, new
    return previous


def current() -> RedisSettings:
    return _current


@contextmanager
def configured(new: RedisSettings) -> Iterator[RedisSettings]:
    """`new` for the block, the previous settings after it."""
    previous = configure(new)
    try:
        yield new
    finally:
        configure(previous)


def key(*parts: object) -> str:
    """``<prefix>:<part>:<part>...``; parts are str()-ed, none may be empty or contain spaces."""
    if not parts:
        raise ValueError("key() needs at least one part")
    texts = [str(part) for part in parts]
    for text in texts:
        if not text or any(c.isspace() for c in text):
            raise ValueError(f"invalid Redis key part {text!r}: empty or containing whitespace")
    return ":".join([key_prefix(), *texts])


def key_prefix() -> str:
    return _current.prefix


def redis_client(url: str | None = None) -> redis.Redis:
    """A client (decoded str responses) for `url`, the configured URL, or the embedded server.

    One client a URL a process, so callers share its connection pool; redis-py pools are
    fork-safe (a child process opens its own connections).
    """
    target = url or _current.url or embedded_redis_url()
    cache_key = (target, os.getpid())
    client = _clients.get(cache_key)
    if client is None:
        client = redis.Redis.from_url(
            target, decode_responses=True, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
            retry=quick_retry(),
        )
        _clients[cache_key] = client
    return client


def quick_retry() -> Retry:
    """Two quick retries (<= 0.2 s apart) instead of redis-py 8's default ten (up to 1 s apart):
    callers with a fallback (rate limiter, flags, heartbeat history) must notice an outage fast."""
    return Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2)


def embedded_socket_path(directory: Path) -> Path:
    return embedded_redis.socket_path(directory)


def embedded_redis_url(data_dir: Path | None = None) -> str:
    """Start the embedded server of `data_dir` (None: the configured one) if nobody answers on
    its socket; return its ``unix://`` URL."""
    return embedded_redis.ensure(data_dir or _current.embedded_dir(), _current.idle_s)


def stop_embedded_redis(data_dir: Path | None = None) -> bool:
    """Shut the embedded server down (saving its data); False if none was running."""
    data_dir = data_dir or _current.embedded_dir()
    url = embedded_redis.url_of(embedded_socket_path(embedded_redis.server_dir(data_dir)))
    _forget(url)
    return embedded_redis.stop(data_dir)


def describe_embedded() -> dict | None:
    """The configured embedded server, if running (`embedded_redis.describe`)."""
    return embedded_redis.describe(_current.embedded_dir())


def release_embedded_redis() -> list[str]:
    """At the end of a command (or test): close this process's clients of the embedded servers it
    started and stop those servers unless another process still uses them."""
    for path in embedded_redis.started_here():
        _forget(embedded_redis.url_of(path))
    return embedded_redis.release_started_here()


def _forget(url: str) -> None:
    client = _clients.pop((url, os.getpid()), None)
    if client is not None:
        client.connection_pool.disconnect()
