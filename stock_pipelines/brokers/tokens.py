"""Access tokens issued once and shared by every process on the machine.

KIS issues at most one token a minute per app key and each is valid a day, so every worker
asking for its own token would be refused (EGW00133) and would burn the daily allowance.
The cache is a small JSON file per (broker, app key) under the data directory, mode 0600 in
a 0700 directory, guarded by an fcntl lock so exactly one process issues while the others
wait and then read its token. The file holds a secret: it is never logged or copied into
metadata; the app key appears only as a hash in the file name.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stock_pipelines.atomic_files import replacing

REFRESH_MARGIN_S = 600.0  # refresh ten minutes before expiry, never mid-recovery at the edge
ISSUE_SPACING_S = 61.0  # KIS: one issue a minute per app key


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # epoch seconds
    issued_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - REFRESH_MARGIN_S


class TokenCache:
    def __init__(self, directory: Path, broker: str, app_key: str, clock: Callable[[], float] = time.time):
        self.directory = directory
        digest = hashlib.sha256(app_key.encode()).hexdigest()[:16]
        self.path = directory / f"{broker}-{digest}.json"
        self.clock = clock

    def get(self, issue: Callable[[], Token], refused: Token | None = None) -> Token:
        """The cached token if fresh, else one issued under the lock.

        `refused` is a token the broker just called expired or invalid: it is not returned
        again, but a different token another process issued meanwhile is.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cached = self._read()
            if cached is not None and cached.fresh(self.clock()) and cached != refused:
                return cached
            if cached is not None:
                # Keep the broker's one-issue-a-minute rule instead of being refused for it.
                wait = cached.issued_at + ISSUE_SPACING_S - self.clock()
                if 0 < wait <= ISSUE_SPACING_S:
                    time.sleep(wait)
            token = issue()
            self._write(token)
            return token

    def _read(self) -> Token | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Token(str(data["value"]), float(data["expires_at"]), float(data["issued_at"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write(self, token: Token) -> None:
        with replacing(self.path, "w") as handle:  # a temporary file is created owner-only (0600)
            json.dump({"value": token.value, "expires_at": token.expires_at, "issued_at": token.issued_at}, handle)
