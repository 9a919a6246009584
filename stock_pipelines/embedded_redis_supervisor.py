"""The embedded Redis server's own process: runs `redis-server` and stops it when nobody uses it.

    python -m stock_pipelines.embedded_redis_supervisor CONFIG SOCKET IDLE_S

Started detached by `embedded_redis.start` (so it outlives a short command that needed the
server while other processes still use it). Every few seconds it lists the server's clients;
once no client but itself has been connected for IDLE_S seconds it shuts the server down
(append-only file flushed) and exits. It also exits when the server exits (a SHUTDOWN from
`stop` or `release_started_here`), and passes SIGTERM/SIGINT/SIGHUP on to the server.
A process that uses the server keeps its connection pool open, so the server lives exactly as
long as somebody is connected, plus IDLE_S.

The server never outlives its supervisor: whatever ends the loop (an error included) stops it,
a socket file deleted under it (its data dir removed) stops it since nobody can connect any
more, and on Linux the kernel sends it SIGTERM if the supervisor itself is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SUPERVISOR_CLIENT = "sp-embedded-supervisor"
RELEASE_CLIENT = "sp-embedded-release"  # the probe `release_started_here` asks with
OWN_CLIENTS = frozenset({SUPERVISOR_CLIENT, RELEASE_CLIENT})


def users(client: redis.Redis) -> list[dict]:
    """The connected clients that are not the embedded server's own bookkeeping."""
    return [c for c in client.client_list() if c.get("name") not in OWN_CLIENTS]


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM when its parent (this supervisor) dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def supervise(binary: str, config: str, socket_path: str, idle_s: float) -> int:
    server = subprocess.Popen(
        [binary, config], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )

    def forward(signum, _frame) -> None:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # redis-server flushes its append-only file and exits

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        return _watch(server, socket_path, idle_s)
    finally:
        _end(server)


def _watch(server: subprocess.Popen, socket_path: str, idle_s: float) -> int:
    poll_s = min(5.0, max(0.2, idle_s / 5))
    client: redis.Redis | None = None
    idle_since = started = time.monotonic()
    while True:
        try:
            return server.wait(timeout=poll_s)
        except subprocess.TimeoutExpired:
            pass
        if not os.path.exists(socket_path) and time.monotonic() - started > 30:
            print(f"{socket_path} is gone: nobody can connect, stopping the embedded Redis", flush=True)
            return 0
        try:
            if client is None:
                client = redis.Redis(
                    unix_socket_path=socket_path, client_name=SUPERVISOR_CLIENT, socket_timeout=5,
                    retry=Retry(NoBackoff(), 0),
                )
            in_use = bool(users(client))
        except (redis.RedisError, OSError):
            client = None  # still loading its data, or busy: ask again next time
            continue
        if in_use:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_s:
            print(f"no client for {idle_s:g} s: shutting the embedded Redis down", flush=True)
            return 0


def _end(server: subprocess.Popen) -> None:
    """SIGTERM (redis-server flushes its append-only file and exits), SIGKILL after 30 s."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str]) -> int:
    binary, config, socket_path, idle_s = argv
    return supervise(binary, config, socket_path, float(idle_s))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
