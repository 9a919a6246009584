"""The fleet's status file: written whole (atomic_files) by the running supervisor, read by
`stock-pipelines fleet status` from any other process, and judged for the healthcheck.

Times are the machine's wall clock (epoch seconds and UTC ISO): restart waits are wall seconds,
like the collector's own reconnect backoff, whatever the project clock says.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from stock_pipelines.atomic_files import write_text

STALE_AFTER_S = 30.0  # the supervisor rewrites the file every second; 30 s old = it is not running


class FleetStatusError(RuntimeError):
    pass


@dataclass(frozen=True)
class CollectorStatus:
    id: str
    source: str
    symbols: int
    metrics_url: str | None  # its /metrics (fleet file metrics_port), None when it serves none
    state: str
    pid: int | None
    restarts: int
    started_at: str | None
    last_exit_code: int | None
    last_exit_reason: str | None
    last_exit_at: str | None
    next_restart_at: str | None
    next_restart_in_s: float | None


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def status_document(collectors: list[CollectorStatus], supervisor_state: str, switch: str, dormant: bool,
                    now: float) -> dict:
    return {
        "supervisor": {"pid": os.getpid(), "state": supervisor_state, "updated_at": iso(now),
                       "updated_epoch": round(now, 3)},
        "kill_switch": switch,
        "dormant": dormant,
        "collectors": {c.id: asdict(c) for c in collectors},
    }


def write_status(path: Path, document: dict, durable: bool = False) -> None:
    write_text(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n", durable=durable)


def read_status(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetStatusError(f"no fleet status at {path}: is `stock-pipelines fleet run` running "
                               "with this fleet file?") from None
    except (OSError, ValueError) as error:
        raise FleetStatusError(f"cannot read the fleet status {path}: {error}") from None
    if not isinstance(document, dict) or "collectors" not in document:
        raise FleetStatusError(f"{path} is not a fleet status file")
    return document


def supervisor_alive(document: dict, now: float) -> tuple[bool, str]:
    supervisor = document.get("supervisor", {})
    age = now - float(supervisor.get("updated_epoch", 0))
    if supervisor.get("state") == "stopped":
        return False, "the supervisor has stopped"
    if age > STALE_AFTER_S:
        return False, f"the status file was last written {age:.0f} s ago (the supervisor is not running)"
    return True, f"updated {age:.1f} s ago"


def health_problems(document: dict, now: float) -> list[str]:
    """What makes the fleet unhealthy (the healthcheck exits 1 when this is not empty)."""
    alive, detail = supervisor_alive(document, now)
    problems = [] if alive else [detail]
    for collector in document["collectors"].values():
        if collector["state"] == "failed":
            problems.append(f"collector {collector['id']} failed: {collector['last_exit_reason']}")
    return problems
