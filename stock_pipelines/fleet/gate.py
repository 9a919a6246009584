"""The fleet's two governance inputs, read from Redis at every poll (never cached):

- the kill switch `FEATURE_COLLECTORS_ENABLED` (resilience/flags.py: off in the environment for
  good, or off in Redis at run time). Off: the supervisor stops its collectors gracefully and
  starts none until it is on again. A switch the fleet cannot read (Redis unreachable) changes
  nothing: collectors are the data path and ride out a Redis outage on their own, so the fleet
  neither stops running ones nor holds restarts because Redis blinked;
- dormant mode (resilience/dormant.py): restarts slow down to the backoff cap (fleet/policy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from stock_pipelines.resilience.dormant import DormantGuard
from stock_pipelines.resilience.flags import COLLECTORS, FeatureFlags, FlagValueError
from stock_pipelines.resilience.state_store import RedisStateStore


@dataclass(frozen=True)
class GateReading:
    collectors_enabled: bool | None  # None: unknown (Redis unreachable): keep what runs running
    switch_detail: str
    dormant: bool
    dormant_reason: str


class FleetGate:
    def __init__(self, client_factory: Callable[[], redis.Redis | None]) -> None:
        self.client_factory = client_factory

    def read(self) -> GateReading:
        try:
            client = self.client_factory()
        except (redis.RedisError, OSError, RuntimeError) as error:
            return GateReading(None, f"redis unavailable ({type(error).__name__})", False, "")
        try:
            state = FeatureFlags(client).state(COLLECTORS)
        except FlagValueError as error:
            # a typo in a kill switch is not guessed at: read as off, with the reason
            return GateReading(False, str(error), False, "")
        if state.source == "redis_unreachable":
            return GateReading(None, f"{COLLECTORS} unknown: {state.detail}", False, "")
        enabled = state.enabled
        detail = f"{COLLECTORS} is {'on' if enabled else 'off'} ({state.source})"
        try:
            dormant = DormantGuard(RedisStateStore(client)).state()
        except (redis.RedisError, OSError):
            return GateReading(enabled, detail, False, "")
        return GateReading(enabled, detail, dormant.dormant, dormant.reason)
