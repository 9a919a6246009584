"""The soak's child processes: each in its own process group (so a signal reaches its children
too, and a Ctrl-C in the terminal reaches only the harness), its output in a log file, and
every one of them ended by `Children.stop_all` whatever happened."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from stock_pipelines.embedded_redis import redis_server_binary

CLI = [sys.executable, "-m", "stock_pipelines.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    kind: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self, stdout=None) -> Child:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=stdout or log, stderr=log, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the group (a clean stop), SIGKILL to whatever is left after `timeout`."""
        if self.process is None:
            return
        self.signal_group(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # grandchildren that outlived their parent
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@dataclass
class Children:
    """Every process the soak started, ended together."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, kind: str, argv: list[str], env: dict[str, str], log_name: str, stdout=None) -> Child:
        child = Child(kind, argv, env, self.log_dir / log_name).start(stdout)
        self.started.append(child)
        return child

    def of_kind(self, kind: str) -> list[Child]:
        return [c for c in self.started if c.kind == kind and c.alive()]

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()


def start_redis(children: Children, directory: Path, port: int, timeout: float = 15.0) -> Child:
    """A throw-away redis-server on 127.0.0.1:`port` (no persistence: killed, it comes back empty)."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [str(redis_server_binary()), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--protected-mode", "yes"]
    child = children.start("redis", argv, dict(os.environ), "redis.log")
    wait_until(f"redis on port {port}", lambda: _redis_answers(port), timeout, child)
    return child


def _redis_answers(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_exchange(children: Children, args: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[Child, dict]:
    """`sim exchange --port 0 ARGS`; returns the child and its start line (url, fake_now ...)."""
    start_line = children.log_dir / "exchange.start.json"
    with start_line.open("w") as out:
        child = children.start("exchange", [*CLI, "sim", "exchange", "--port", "0", *args], env, "exchange.log",
                               stdout=out)
    wait_until("the exchange's start line", lambda: start_line.read_text().strip(), timeout, child)
    return child, json.loads(start_line.read_text().splitlines()[0])


def wait_until(what: str, ready, timeout: float, child: Child | None = None, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.kind} exited ({child.process.returncode}) before {what}; log {child.log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(every)
