""" "Now" for the automation, with an opt-in fake clock for tests, demos and accelerated runs.

`STOCK_PIPELINES_FAKE_NOW` (default unset: the real clock):
- ``2026-11-20T10:30:00+09:00``               pinned at that instant;
- ``2026-11-20T10:30:00+09:00@1763600000.5``    running at real speed from that instant, which was
  reached at the given wall-clock epoch second;
- ``2026-11-20T10:30:00+09:00@1763600000.5*60`` the same, running at 60 simulated seconds per wall
  second: the speed of an accelerated `sim exchange` (`--overnight run`, one speed day and night),
  so sensors, schedules, checks and the heartbeat store live on the collectors' timeline.
Every process (daemon, run workers, a simulated collector) given the same value shares one timeline.
This module is the only reader of the variable.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from stock_pipelines import settings
from stock_pipelines.market import SEOUL

ENV_FAKE_NOW = "STOCK_PIPELINES_FAKE_NOW"


def fake_now_value(at: datetime, anchor_epoch: float | None = None, speed: float = 1.0) -> str:
    """The env value for a clock at `at`, running from `anchor_epoch` at `speed` (None: pinned)."""
    text = at.astimezone(SEOUL).isoformat()
    if anchor_epoch is None:
        return text
    return f"{text}@{anchor_epoch!r}" if speed == 1.0 else f"{text}@{anchor_epoch!r}*{speed!r}"


def _parse(value: str) -> tuple[datetime, float | None, float]:
    text, _, running = value.strip().partition("@")
    anchor, _, speed_text = running.partition("*")
    try:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("no timezone")
        anchor_epoch = float(anchor) if anchor else None
        speed = float(speed_text) if speed_text else 1.0
        if speed_text and anchor_epoch is None:
            raise ValueError("a speed needs an anchor epoch")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, not {speed_text}")
    except ValueError as error:
        raise ValueError(
            f"{ENV_FAKE_NOW}={value!r}: want ISO-8601 with offset, optionally @epoch[*speed] ({error})"
        ) from None
    return at, anchor_epoch, speed


def parse_fake_now(value: str, wall: float) -> datetime:
    at, anchor_epoch, speed = _parse(value)
    elapsed = (wall - anchor_epoch) * speed if anchor_epoch is not None else 0.0
    return (at + timedelta(seconds=elapsed)).astimezone(SEOUL)


def now() -> datetime:
    """Asia/Seoul now: the fake clock when `STOCK_PIPELINES_FAKE_NOW` is set, else the real one."""
    value = settings.value(ENV_FAKE_NOW)
    if value:
        return parse_fake_now(value, time.time())
    return datetime.now(SEOUL)


def speed() -> float:
    """Project seconds per wall second: 0 when pinned, 1 on the real clock."""
    value = settings.value(ENV_FAKE_NOW)
    if not value:
        return 1.0
    _, anchor_epoch, rate = _parse(value)
    return 0.0 if anchor_epoch is None else rate


def is_fake() -> bool:
    return bool(settings.value(ENV_FAKE_NOW))
