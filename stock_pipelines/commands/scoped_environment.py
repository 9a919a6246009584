"""Environment variables a command sets for itself and the processes it starts, for as long as it
runs: the values it hands to code that reads the environment (the Redis key prefix, the project
clock, the Dagster instance, the settings a Dagster run reads), restored when it ends."""

from __future__ import annotations

import os
from types import TracebackType


class ScopedEnvironment:
    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, **variables: str) -> dict[str, str]:
        """Set `variables` now; the first value each had is restored on leaving the block."""
        for name, value in variables.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        return variables

    @staticmethod
    def for_children() -> dict[str, str]:
        """The environment a child process is given: this process's, with what was set."""
        return dict(os.environ)

    def __enter__(self) -> ScopedEnvironment:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
