"""Archive settings, parsed from environment-style variables (each with a default that runs on
this machine); the caller passes the mapping (`settings.environment()` or a resource's values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from stock_pipelines.settings import Settings

FALLBACK_PREFIX = "@fallback/"  # raw_ticks `file` labels of lines read from the fallback root


class ArchiveConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ArchiveConfig:
    archive_dir: Path
    fallback_dir: Path | None
    session_tolerance: timedelta  # how far outside the session a trade timestamp may be
    quarantine_warn_share: float  # WARN when quarantined / lines in reaches this
    quarantine_error_share: float  # ERROR when it reaches this (higher)
    retention_trading_days: int  # raw archive days kept, 3..10
    freshness_max_silence: timedelta  # continuous trading: a collector's files must grow this often
    min_free_bytes: int  # writer's free-space floor

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArchiveConfig:
        fallback = env.get("STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR")
        config = cls(
            archive_dir=Settings.from_env(env).archive_dir,
            fallback_dir=Path(fallback).resolve() if fallback else None,
            session_tolerance=timedelta(seconds=_number(env, "STOCK_PIPELINES_SESSION_TOLERANCE_S", 5.0)),
            quarantine_warn_share=_number(env, "STOCK_PIPELINES_QUARANTINE_WARN_SHARE", 0.001),
            quarantine_error_share=_number(env, "STOCK_PIPELINES_QUARANTINE_ERROR_SHARE", 0.01),
            retention_trading_days=int(_number(env, "STOCK_PIPELINES_RETENTION_TRADING_DAYS", 5)),
            freshness_max_silence=timedelta(
                seconds=_number(env, "STOCK_PIPELINES_ARCHIVE_MAX_SILENCE_S", 120.0)
            ),
            min_free_bytes=int(_number(env, "STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES", 256 * 1024 * 1024)),
        )
        if not 0 <= config.quarantine_warn_share <= config.quarantine_error_share <= 1:
            raise ArchiveConfigError("need 0 <= QUARANTINE_WARN_SHARE <= QUARANTINE_ERROR_SHARE <= 1")
        return config

    def roots(self) -> list[tuple[Path, str]]:
        """(root, label prefix) of every place a writer may have put files."""
        roots = [(self.archive_dir, "")]
        if self.fallback_dir is not None and self.fallback_dir != self.archive_dir:
            roots.append((self.fallback_dir, FALLBACK_PREFIX))
        return roots


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise ArchiveConfigError(f"{name}={text!r} is not a number") from None
