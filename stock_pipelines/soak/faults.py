"""Injecting and clearing each kind of soak fault against the live processes.

`Injector.inject(fault)` breaks something now and returns what clearing it needs;
`Injector.clear(fault, token)` puts it right (a person's `stock-pipelines resume` after refused
credentials, the daemon started again after it was killed). A SIGKILLed collector needs no
clearing: the fleet supervisor restarts it, which is what the soak measures."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import httpx

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
KINDS = (*EXCHANGE_MODES, *SIGNAL_KINDS, "redis_kill", "daemon_kill")


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
        return None

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
