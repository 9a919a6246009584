"""Injecting and clearing each kind of soak fault against the live processes.

`Injector.inject(fault)` breaks something now and returns what clearing it needs;
`Injector.clear(fault, token)` puts it right (a person's `stock-pipelines resume` after refused
credentials, the daemon started again after it was killed). A SIGKILLed collector needs no
clearing: the fleet supervisor restarts it, which is what the soak measures.

The archive disk floor (`disk_floor`) raises the collectors' floor above the space there is
instead of filling the disk: the fault writes the operator's floor file
(`<archive>/disk-floor-bytes`, archive/disk_floor.py) with the filesystem's total size plus one,
and clearing deletes it. Each writer reads the file at its next free-space check (every wall
second), measures the real free space against it, refuses trades with DISK_LOW and, once the
file is gone, writes DISK_OK and accepts them again by itself. The alternatives were weighed
against the shared machine the soak runs on: a ballast file crossing a floor set just under
the free space measured at the start breaks as soon as anything else on the disk (the soak's
own archive and lake included) writes or deletes a few hundred MB, and still writes them; an
archive on a filesystem of its own (tmpfs, loop device) needs root and leaves the fault out of
any run without it, which `test_disk_full.py` already covers with a 256 KiB tmpfs. The floor
file needs neither, writes a few bytes, and is a feature operators use: moving the floor of
running collectors without restarting them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from stock_pipelines import atomic_files
from stock_pipelines.archive.disk_floor import OPERATOR_FLOOR_FILE
from stock_pipelines.soak.schedule import PlannedFault

# exchange fault kinds -> (admin mode, parameters)
EXCHANGE_MODES: dict[str, tuple[str, dict]] = {
    "exchange_http500": ("http500", {"probability": 0.3}),
    "exchange_latency": ("latency", {"latency_ms": 300}),
    "egw00201_storm": ("egw00201", {"probability": 0.5}),
    "feed_stall": ("stall_ws", {}),
    "feed_drop": ("drop_ws", {}),
    "credentials_refused": ("unauthorized", {}),
}
SIGNAL_KINDS = {"collector_sigkill": signal.SIGKILL, "collector_sigstop": signal.SIGSTOP}
KINDS = (*EXCHANGE_MODES, *SIGNAL_KINDS, "redis_kill", "daemon_kill", "disk_floor")


class FaultError(RuntimeError):
    pass


@dataclass
class Injector:
    exchange_url: str
    collector_pid: Callable[[str], int | None]   # the running pid of a collector id (fleet status)
    kill_redis: Callable[[], None]
    start_redis: Callable[[], None]
    kill_daemon: Callable[[], None]
    start_daemon: Callable[[], None]
    resume_argv: list[str]
    resume_env: dict[str, str]

    def inject(self, fault: PlannedFault):
        if fault.kind in EXCHANGE_MODES:
            mode, parameters = EXCHANGE_MODES[fault.kind]
            try:
                self._admin_fault({"mode": mode, "target": fault.subject, **parameters})
            except (httpx.HTTPError, FaultError):
                # the exchange may have applied it before the reply was lost: never leave it on unlogged
                self._admin_fault({"mode": mode, "enabled": False})
                raise
            return mode
        if fault.kind in SIGNAL_KINDS:
            pid = self.collector_pid(fault.subject)
            if pid is None:
                raise FaultError(f"{fault.id}: collector {fault.subject} has no running process")
            os.kill(pid, SIGNAL_KINDS[fault.kind])
            return pid
        if fault.kind == "redis_kill":
            self.kill_redis()
            return None
        if fault.kind == "daemon_kill":
            self.kill_daemon()
            return None
        if fault.kind == "disk_floor":
            return raise_disk_floor(self.archive_dir())
        raise FaultError(f"{fault.id}: unknown fault kind {fault.kind!r}")

    def clear(self, fault: PlannedFault, token) -> str | None:
        """Clear `fault`; returns a note when clearing needed a person's action."""
        if fault.kind in EXCHANGE_MODES:
            self._admin_fault({"mode": token, "enabled": False})
            if fault.kind == "credentials_refused":
                return self._resume()
            return None
        if fault.kind == "collector_sigstop":
            try:
                os.kill(token, signal.SIGCONT)
            except ProcessLookupError:
                return "the stopped collector was gone before SIGCONT"
            return None
        if fault.kind == "redis_kill":
            self.start_redis()
        elif fault.kind == "daemon_kill":
            self.start_daemon()
        elif fault.kind == "disk_floor":
            restore_disk_floor(self.archive_dir(), token)
        return None

    def archive_dir(self) -> Path:
        """The archive every collector of the soak writes to (their shared environment's)."""
        directory = self.resume_env.get("STOCK_PIPELINES_ARCHIVE_DIR")
        if not directory:
            raise FaultError("no STOCK_PIPELINES_ARCHIVE_DIR in the soak's environment: no archive to strike")
        return Path(directory)

    def _admin_fault(self, body: dict) -> None:
        response = httpx.post(f"{self.exchange_url}/admin/faults", json=body, timeout=60)
        if response.is_error:
            raise FaultError(f"POST /admin/faults {body}: HTTP {response.status_code} {response.text[:200]}")

    def _resume(self) -> str:
        done = subprocess.run([*self.resume_argv, "resume", "--reason", "soak: credentials restored", "--by", "soak"],
                              env=self.resume_env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise FaultError(f"stock-pipelines resume exited {done.returncode}: {done.stderr[-500:]}")
        return f"resumed: {done.stdout.strip()[:300]}"


def raise_disk_floor(archive: Path) -> str | None:
    """The floor file set above the filesystem's whole size, so the free space is below it
    whatever else writes to the disk; returns what the file held before (None: no file)."""
    path = archive / OPERATOR_FLOOR_FILE
    try:
        previous = path.read_text()
    except FileNotFoundError:
        previous = None
    atomic_files.write_text(path, f"{shutil.disk_usage(archive).total + 1}\n")
    return previous


def restore_disk_floor(archive: Path, previous: str | None) -> None:
    path = archive / OPERATOR_FLOOR_FILE
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        atomic_files.write_text(path, previous)
