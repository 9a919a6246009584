"""May a step call the broker now? Asked by every step that calls one, at run time.

An automatic run (launched by a schedule or a sensor) calls the broker only while the
`FEATURE_AUTO_RECOVERY_ENABLED` kill switch is on and governance is not dormant (a PERMANENT_OPEN
breaker makes it dormant); its calls then go through the breaker one by one. A run a person
launched calls the broker whatever the automation's state, and is told why automation would not
have: the kill switch and dormant mode govern automation, not people.

Asked at run time, not only when the run was launched: a switch turned off while runs wait in
the queue stops them too. Redis unreachable reads as "off" (the kill switch's rule: when its
state is unknown, automation stays still).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from stock_pipelines.ops.governance import RecoveryGovernance
from stock_pipelines.resilience.flags import AUTO_RECOVERY, FeatureFlags


@dataclass(frozen=True)
class BrokerPermit:
    allowed: bool
    launched_by: str  # "schedule end_of_day_schedule", "sensor ...", or "a person"
    automation_off: str  # why automation may not call the broker now; "" when it may

    def describe(self) -> str:
        if not self.automation_off:
            return f"launched by {self.launched_by}; automatic broker calls allowed"
        if self.allowed:
            return (f"automation is off ({self.automation_off}); this run was launched by "
                    f"{self.launched_by}, so it calls the broker anyway")
        return (f"automation is off ({self.automation_off}): launched by {self.launched_by}, "
                "no broker call made")


def automation_off(client: redis.Redis | None) -> str:
    """Why automatic broker calls may not go out now, or "" when they may."""
    flag = FeatureFlags(client).state(AUTO_RECOVERY)
    if not flag.enabled:
        return f"{AUTO_RECOVERY} off via {flag.source}" + (f": {flag.detail}" if flag.detail else "")
    if client is None:
        return "governance unknown: no Redis"
    try:
        governance = RecoveryGovernance(client)
        governance.decision()  # a PERMANENT_OPEN breaker enters dormant mode here
        dormant = governance.dormant_state()
    except redis.RedisError as error:
        return f"governance unknown (Redis: {type(error).__name__})"
    if dormant.dormant:
        return f"dormant: {dormant.reason}"
    return ""


def broker_permit(client: redis.Redis | None, launched_by: str | None) -> BrokerPermit:
    """`launched_by`: the schedule or sensor that launched the run, None when a person did."""
    off = automation_off(client)
    automatic = launched_by is not None
    return BrokerPermit(
        allowed=not (automatic and off),
        launched_by=launched_by or "a person",
        automation_off=off,
    )
