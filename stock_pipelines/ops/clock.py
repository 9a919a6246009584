""" "Now" for the automation, with an opt-in fake clock for tests, demos and accelerated runs.

`STOCK_PIPELINES_FAKE_NOW` (default unset: the real clock):
- ``2026-11-20T10:30:00+09:00``               pinned at that instant;
- ``2026-11-20T10:30:00+09:00@1763600000.5``    running at real speed from that instant, which was
  reached at the given wall-clock epoch second;
- ``2026-11-20T10:30:00+09:00@1763600000.5*60`` the same, running at 60 simulated seconds per wall
  second day and night: the speed of a `sim exchange --speed 60 --overnight run`;
- ``2026-11-20T10:30:00+09:00@1763600000.5*600/6000`` 600x in the day windows and 6000x between
  them (`market.segments`): a `sim exchange --speed 600 --night-speed 6000 --overnight run`.
Every process (daemon, run workers, a simulated collector) given the same value shares one timeline
with the exchange, so sensors, schedules, checks and the heartbeat store live on the collectors' time.
This module is the only reader of the variable.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime

from stock_pipelines import settings
from stock_pipelines.market import SEOUL
from stock_pipelines.market.segments import US, advance_us, check_speed, segment_at, to_us

ENV_FAKE_NOW = "STOCK_PIPELINES_FAKE_NOW"


@dataclass(frozen=True)
class FakeClock:
    at: datetime
    anchor_epoch: float | None   # None: pinned at `at`
    day_speed: float = 1.0
    night_speed: float = 1.0

    def now(self, wall: float) -> datetime:
        if self.anchor_epoch is None:
            return self.at.astimezone(SEOUL)
        elapsed = wall - self.anchor_epoch
        if elapsed < 0:   # before its anchor the clock runs backwards at the day speed
            return datetime.fromtimestamp((to_us(self.at) + int(elapsed * self.day_speed * US)) / US, SEOUL)
        return datetime.fromtimestamp(advance_us(to_us(self.at), elapsed, self.day_speed, self.night_speed) / US, SEOUL)

    def rate(self, wall: float) -> float:
        """Project seconds per wall second at `wall`: 0 when pinned."""
        if self.anchor_epoch is None:
            return 0.0
        if self.day_speed == self.night_speed:
            return self.day_speed
        _, is_day = segment_at(to_us(self.now(wall)))
        return self.day_speed if is_day else self.night_speed


def fake_now_value(at: datetime, anchor_epoch: float | None = None, speed: float = 1.0,
                   night_speed: float | None = None) -> str:
    """The env value for a clock at `at`, running from `anchor_epoch` at `speed` (None: pinned),
    and at `night_speed` between the day windows (None: `speed`)."""
    text = at.astimezone(SEOUL).isoformat()
    if anchor_epoch is None:
        return text
    if night_speed is not None and night_speed != speed:
        return f"{text}@{anchor_epoch!r}*{speed!r}/{night_speed!r}"
    return f"{text}@{anchor_epoch!r}" if speed == 1.0 else f"{text}@{anchor_epoch!r}*{speed!r}"


# now() runs in every sensor tick and heartbeat: parse each raw value once. Keyed by the value
# itself, so a changed variable is parsed afresh; FakeClock is frozen, safe to share.
@functools.lru_cache(maxsize=16)
def parse_clock(value: str) -> FakeClock:
    text, _, running = value.strip().partition("@")
    anchor, _, speeds = running.partition("*")
    day_text, slash, night_text = speeds.partition("/")
    try:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("no timezone")
        anchor_epoch = float(anchor) if anchor else None
        if speeds and anchor_epoch is None:
            raise ValueError("a speed needs an anchor epoch")
        if slash and not day_text:
            raise ValueError("a night speed needs a day speed before it")
        day_speed = check_speed(day_text) if day_text else 1.0
        night_speed = check_speed(night_text) if slash else day_speed
    except ValueError as error:
        raise ValueError(
            f"{ENV_FAKE_NOW}={value!r}: want ISO-8601 with offset, optionally @epoch[*speed[/night_speed]] ({error})"
        ) from None
    return FakeClock(at, anchor_epoch, day_speed, night_speed)


def parse_fake_now(value: str, wall: float) -> datetime:
    return parse_clock(value).now(wall)


def now() -> datetime:
    """Asia/Seoul now: the fake clock when `STOCK_PIPELINES_FAKE_NOW` is set, else the real one."""
    value = settings.value(ENV_FAKE_NOW)
    if value:
        return parse_fake_now(value, time.time())
    return datetime.now(SEOUL)


def speed() -> float:
    """Project seconds per wall second in the day windows (what the sensors' wall intervals are
    sized for): 0 when pinned, 1 on the real clock."""
    value = settings.value(ENV_FAKE_NOW)
    if not value:
        return 1.0
    clock = parse_clock(value)
    return 0.0 if clock.anchor_epoch is None else clock.day_speed


def wall_interval_s(project_s: int, clock_speed: float, at_least_s: int = 1) -> int:
    """Wall seconds between a sensor's evaluations: Dagster counts wall seconds, so on an
    accelerated clock it evaluates as often in project time as at 1x (`project_s` apart), but never
    more often than every `at_least_s` wall seconds."""
    if clock_speed <= 1:
        return project_s
    return max(at_least_s, round(project_s / clock_speed))


def is_fake() -> bool:
    return bool(settings.value(ENV_FAKE_NOW))
