"""The process environment: with the Dagster resources (`defs/resources.py`) and the command entry
points (`commands/`, `cli.py`), the only module that reads `os.environ`.

Two kinds of setting come from here:
- the lake and archive roots (`Settings`), each with a default that runs on this machine;
- process-wide settings every process of a deployment shares: the Redis URL and key prefix, the
  embedded Redis's idle limit and the deployment's kill switches (`FEATURE_*`), which
  `configure_process` hands to `redis_conn` as values, and the calendar cache's directory, which
  it hands to `market.cache`; the project clock's fake time (`value`).

Configuration a step uses (archive checks, quality thresholds, the broker and its credentials)
is parsed by its package's config class from a mapping (`ArchiveConfig.from_env(env)`), and the
Dagster layer receives it as a resource. `environment()` is that mapping for the command
entry points.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_VAR, DEFAULT_DATA_DIR = "STOCK_PIPELINES_DATA_DIR", "data"
ARCHIVE_DIR_VAR = "STOCK_PIPELINES_ARCHIVE_DIR"  # default: <data dir>/archive


def environment() -> Mapping[str, str]:
    """The process environment, for the config parsers (`XConfig.from_env(environment())`)."""
    return os.environ


def value(name: str) -> str | None:
    """One process-wide setting (see the module docstring), None when unset."""
    return os.environ.get(name)


def configure_process(env: Mapping[str, str] | None = None) -> None:
    """Hand the process-wide settings in `env` (None: the process environment) to the modules
    that use them. Called by the command entry point and the Dagster code location at start."""
    from stock_pipelines import redis_conn
    from stock_pipelines.market import cache

    env = os.environ if env is None else env
    redis_conn.configure(redis_conn.RedisSettings.from_env(env))
    cache.use_cache_dir(cache.cache_dir_from(env))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    archive_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get(DATA_DIR_VAR, DEFAULT_DATA_DIR)).resolve()
        archive_dir = Path(env.get(ARCHIVE_DIR_VAR, str(data_dir / "archive"))).resolve()
        return cls(data_dir=data_dir, archive_dir=archive_dir)

    def lake_partition_dir(self, asset: str, day_iso: str) -> Path:
        """`<data root>/<asset>/date=YYYY-MM-DD` (docs/architecture.md, "Contracts")."""
        return self.data_dir / asset / f"date={day_iso}"
