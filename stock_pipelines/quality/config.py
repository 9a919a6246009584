"""Quality thresholds and the broker sample budget, parsed from environment-style variables
(working defaults); the caller passes the mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number: give a share such as 0.999") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={raw!r} must be a share between 0 and 1")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must be >= 0")
    return value


@dataclass(frozen=True)
class QualityConfig:
    """- STOCK_PIPELINES_COMPLETENESS_ERROR: ERROR below this share (default 0.999, the original SLA)
    - STOCK_PIPELINES_COMPLETENESS_WARN: WARN below this share (default 0.9999)
    - STOCK_PIPELINES_QUALITY_REST_CALLS: broker calls a day for the consistency sample (default 20; 0 = off)
    - STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS: symbols asked for their day volume (one request each)
      each time quality_broker_day_volumes is materialized (default 50; 0 = off)
    - STOCK_PIPELINES_QUALITY_HISTORY_DAYS: trading days in the report's trend chart (default 20)
    """

    error_share: float = 0.999
    warn_share: float = 0.9999
    rest_calls: int = 20
    history_days: int = 20
    day_volume_calls: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QualityConfig:
        config = cls(
            error_share=_share(env, "STOCK_PIPELINES_COMPLETENESS_ERROR", cls.error_share),
            warn_share=_share(env, "STOCK_PIPELINES_COMPLETENESS_WARN", cls.warn_share),
            rest_calls=_count(env, "STOCK_PIPELINES_QUALITY_REST_CALLS", cls.rest_calls),
            day_volume_calls=_count(env, "STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS", cls.day_volume_calls),
            history_days=_count(env, "STOCK_PIPELINES_QUALITY_HISTORY_DAYS", cls.history_days),
        )
        if config.warn_share < config.error_share:
            raise ValueError(
                f"STOCK_PIPELINES_COMPLETENESS_WARN ({config.warn_share}) must not be below "
                f"STOCK_PIPELINES_COMPLETENESS_ERROR ({config.error_share})"
            )
        return config
