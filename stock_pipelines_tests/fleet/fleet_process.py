"""`stock-pipelines fleet run` as a real process for the tests: its fleet file, its event lines
(stdout, JSON a line, kept in a file) and its status file; stopped and reaped by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from stock_pipelines.collector.status import read_status as read_collector_status
from stock_pipelines.fleet.status import read_status

CLI = [sys.executable, "-m", "stock_pipelines.cli"]


def write_fleet_file(tmp_path: Path, url: str, groups: dict[str, list[str]], **overrides) -> Path:
    document = {
        "archive_dir": str(tmp_path / "archive"),
        "clock": "exchange",
        "exchange": {"kis_base_url": str(url)},
        "status_file": str(tmp_path / "fleet" / "status.json"),
        # beats every 0.5 s wall: stale (in the exchange's time at 120x) long before a restart
        "collector_settings": {"HEARTBEAT_WALL_S": 0.5, "FLUSH_INTERVAL_S": 0.2},
        "restart_backoff": {"base_s": 0.5, "cap_s": 4.0},
        "stop_timeout_s": 15,
        "switch_poll_s": 0.3,
        "collectors": [{"id": name, "symbols": codes} for name, codes in groups.items()],
    }
    document.update(overrides)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class FleetProcess:
    def __init__(self, fleet_file: Path, env: dict[str, str], log_dir: Path) -> None:
        self.file, self.env = fleet_file, env
        self.events_path, self.log_path = log_dir / "fleet-events.jsonl", log_dir / "fleet-stderr.log"
        self.status_path = Path(yaml.safe_load(fleet_file.read_text())["status_file"])
        with self.events_path.open("w") as out, self.log_path.open("w") as err:
            self.process = subprocess.Popen([*CLI, "fleet", "run", "--config", str(fleet_file)], env=env,
                                            stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def events(self, name: str | None = None, collector: str | None = None) -> list[dict]:
        lines = self.events_path.read_text().splitlines()
        parsed = [json.loads(line) for line in lines if line.strip()]
        return [e for e in parsed if (name is None or e["event"] == name)
                and (collector is None or e.get("collector") == collector)]

    def status(self) -> dict:
        return read_status(self.status_path) if self.status_path.exists() else {"collectors": {}}

    def collector(self, collector_id: str) -> dict:
        return self.status()["collectors"].get(collector_id, {})

    def cli_status(self, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
        done = subprocess.run([*CLI, "fleet", "status", "--config", str(self.file), *extra],
                              env=env or self.env, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr

    def stderr(self) -> str:
        return self.log_path.read_text()

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Whatever happened: the fleet and any child it left are gone."""
        children = [c.get("pid") for c in self.status()["collectors"].values() if c.get("pid")]
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def streaming(client, collector_id: str) -> bool:
    """The collector is past its self-diagnosis and has its one session subscribed (its Redis status);
    a SIGTERM before that point meets no signal handler yet and kills it outright."""
    return (read_collector_status(client, collector_id).get(collector_id) or {}).get("connected") == 1


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
