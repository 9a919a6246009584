""" "Now" for the automation, with an opt-in fake clock for tests and demos on non-trading days.

`STOCK_PIPELINES_FAKE_NOW` (default unset: the real clock):
- ``2026-11-20T10:30:00+09:00``            pinned at that instant;
- ``2026-11-20T10:30:00+09:00@1763600000.5`` running at real speed from that instant, which was
  reached at the given wall-clock epoch second. Every process (daemon, run workers, a simulated
  collector) given the same value shares one timeline.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from stock_pipelines import settings
from stock_pipelines.market import SEOUL

ENV_FAKE_NOW = "STOCK_PIPELINES_FAKE_NOW"


def fake_now_value(at: datetime, anchor_epoch: float | None = None) -> str:
    """The env value for a clock at `at`, running from `anchor_epoch` (None: pinned)."""
    text = at.astimezone(SEOUL).isoformat()
    return text if anchor_epoch is None else f"{text}@{anchor_epoch!r}"


def parse_fake_now(value: str, wall: float) -> datetime:
    text, _, anchor = value.strip().partition("@")
    try:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("no timezone")
        elapsed = wall - float(anchor) if anchor else 0.0
    except ValueError as error:
        raise ValueError(
            f"{ENV_FAKE_NOW}={value!r}: want ISO-8601 with offset, optionally @epoch ({error})"
        ) from None
    return (at + timedelta(seconds=elapsed)).astimezone(SEOUL)


def now() -> datetime:
    """Asia/Seoul now: the fake clock when `STOCK_PIPELINES_FAKE_NOW` is set, else the real one."""
    value = settings.value(ENV_FAKE_NOW)
    if value:
        return parse_fake_now(value, time.time())
    return datetime.now(SEOUL)


def is_fake() -> bool:
    return bool(settings.value(ENV_FAKE_NOW))
