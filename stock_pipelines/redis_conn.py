"""The project's Redis connection: `REDIS_URL`, or an embedded server the project starts itself.

- `REDIS_URL` set (``redis://host:6379/0``, ``unix:///run/redis.sock``): that server is used.
- `REDIS_URL` unset: the embedded server under ``<STOCK_PIPELINES_DATA_DIR>/redis/``
  (`embedded_redis`: started on demand, found by every process with the same data dir, stopped
  by the command that started it or, when others still use it, once it has been idle).
  `embedded_redis_url()` gives the URL to hand to a child process as its `REDIS_URL`.

Every key lives under one prefix, `STOCK_PIPELINES_REDIS_PREFIX` (default ``sp``): build keys
with `key(...)`, never by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from stock_pipelines import embedded_redis, settings

ENV_URL = "REDIS_URL"
ENV_PREFIX = "STOCK_PIPELINES_REDIS_PREFIX"
DEFAULT_PREFIX = "sp"

_clients: dict[tuple[str, int], redis.Redis] = {}


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
    prefix = settings.value(ENV_PREFIX)
    prefix = DEFAULT_PREFIX if prefix is None else prefix
    if not prefix or any(c.isspace() or c == ":" for c in prefix):
        raise ValueError(f"{ENV_PREFIX}={prefix!r} is not a valid key prefix (non-empty, no ':' or spaces)")
    return prefix


def redis_client(url: str | None = None) -> redis.Redis:
    """A client (decoded str responses) for `url`, `REDIS_URL`, or the embedded server.

    One client a URL a process, so callers share its connection pool; redis-py pools are
    fork-safe (a child process opens its own connections).
    """
    target = url or settings.value(ENV_URL) or embedded_redis_url()
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
    """Start the embedded server if nobody answers on its socket; return its ``unix://`` URL."""
    return embedded_redis.ensure(data_dir)


def stop_embedded_redis(data_dir: Path | None = None) -> bool:
    """Shut the embedded server down (saving its data); False if none was running."""
    url = embedded_redis.url_of(embedded_socket_path(embedded_redis.server_dir(data_dir)))
    _forget(url)
    return embedded_redis.stop(data_dir)


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
