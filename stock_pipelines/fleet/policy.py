"""What the supervisor does when a collector exits: every decision here, no processes, no clock.

How an exit is read (the collector's exit statuses, docs/collector.md and commands/collector.py):
- 2: a usage error (bad --symbols, --source, --id): the fleet file is wrong, so restarting cannot
  help. `failed`, never restarted; fix the file and restart the fleet.
- 1 before the start line: the self-diagnosis failed (settings, Redis, archive, disk floor, an
  app key refused). Retrying at once would hammer the broker with a refused key, so it is
  `failed` and retried on the slow `diagnosis_retry` backoff (default 60 s doubling to 15 min),
  which also heals a Redis or network outage without a person.
- anything else (a signal, 1 after the start line = a fatal runtime error, 0 that the fleet did
  not ask for): a crash, restarted after `restart_backoff` with full jitter. The attempt count
  resets once a child has run `stable_after_s`, so a collector that dies once a day restarts
  fast every time, and one that dies at once keeps doubling its wait.
Full jitter (`resilience.backoff.Backoff`) spreads the restarts of many collectors that died
together (a broker outage, a Redis restart) over the whole window instead of one burst.

Dormant mode (the automation gave up until a person resumes): crashed collectors are still
restarted, since a collector that stays down loses trades no REST call brings back, but only at
the backoff cap, so a fleet crashing in a loop while the broker refuses everything does not churn.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass
from enum import Enum

from stock_pipelines.resilience.backoff import Backoff

USAGE_ERROR_EXIT, DIAGNOSIS_EXIT = 2, 1


class ExitKind(Enum):
    STOPPED = "stopped"  # asked to stop, exited
    USAGE_ERROR = "usage_error"
    DIAGNOSIS_FAILED = "diagnosis_failed"
    CRASHED = "crashed"


class State(Enum):
    PENDING = "pending"  # not started yet
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed, restart scheduled
    FAILED = "failed"  # diagnosis or usage error: a person should look
    DISABLED = "disabled"  # the collectors kill switch is off
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Exit:
    code: int  # Popen.returncode: negative = killed by that signal
    started: bool  # the child printed its start line (self-diagnosis passed)
    stop_requested: bool
    ran_s: float


@dataclass(frozen=True)
class Decision:
    kind: ExitKind
    state: State
    delay_s: float | None  # None: not restarted automatically
    reason: str
    crash_attempt: int  # consecutive crashes counted for the next decision
    diagnosis_attempt: int


@dataclass(frozen=True)
class RestartPolicy:
    restart: Backoff
    diagnosis: Backoff
    stable_after_s: float

    def classify(self, ended: Exit) -> ExitKind:
        if ended.stop_requested:
            return ExitKind.STOPPED
        if ended.code == USAGE_ERROR_EXIT:
            return ExitKind.USAGE_ERROR
        if ended.code == DIAGNOSIS_EXIT and not ended.started:
            return ExitKind.DIAGNOSIS_FAILED
        return ExitKind.CRASHED

    def decide(self, ended: Exit, crash_attempt: int, diagnosis_attempt: int, rng: random.Random,
               dormant: bool = False, detail: str = "") -> Decision:
        """`crash_attempt`/`diagnosis_attempt`: consecutive failures of each kind before this exit."""
        kind = self.classify(ended)
        described = describe_exit(ended.code) + (f": {detail}" if detail else "")
        if kind is ExitKind.STOPPED:
            return Decision(kind, State.STOPPED, None, described, 0, 0)
        if kind is ExitKind.USAGE_ERROR:
            return Decision(kind, State.FAILED, None, f"usage error, not restarted ({described})",
                            crash_attempt, diagnosis_attempt)
        if kind is ExitKind.DIAGNOSIS_FAILED:
            delay = self.diagnosis.delay(diagnosis_attempt, rng) if not dormant else self.diagnosis.cap
            delay = max(delay, self.diagnosis.base)  # never sooner than the base: no tight loop
            return Decision(kind, State.FAILED, delay, f"self-diagnosis failed ({described})",
                            0, diagnosis_attempt + 1)
        attempt = 0 if ended.ran_s >= self.stable_after_s else crash_attempt
        delay = self.restart.cap if dormant else self.restart.delay(attempt, rng)
        reason = f"crashed ({described})" + ("; dormant mode: restart at the backoff cap" if dormant else "")
        return Decision(kind, State.BACKOFF, delay, reason, attempt + 1, 0)

    def bound(self, crash_attempt: int) -> float:
        """The longest a crashed collector waits for its restart (attempt counted from 0)."""
        return self.restart.ceiling(crash_attempt)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
