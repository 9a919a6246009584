"""The soak's fault schedule: which faults, on which day, at what exchange time, for how long.

The same seed gives the same schedule (one `random.Random(seed)` draws every choice, in a fixed
order). Faults are grouped so that they overlap on purpose: each group lands on one day, its
members start within a few minutes of each other and last long enough to run into the next.
Times are exchange minutes after 10:15 (the CSAT day opens at 10:00, the others at 09:00), so
every fault falls inside any session with time left for the collectors to come back before the
close.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

EARLIEST_MINUTE = 10 * 60 + 15   # 10:15
LATEST_MINUTE = 14 * 60 + 15     # 14:15: a fault's clearing still leaves most of an hour

# (kind, subject hint, duration range in exchange minutes). A subject hint "collector" is filled
# with a collector id from the fleet; "collectors:N" with N distinct ids struck at the same instant;
# "archive" is the archive every collector writes to.
Member = tuple[str, str, tuple[int, int]]
FULL_GROUPS: list[list[Member]] = [
    [("collector_sigkill", "collectors:3", (0, 0)), ("exchange_http500", "kis", (20, 40)),
     ("exchange_latency", "kis", (20, 40))],
    [("collector_sigstop", "collectors:2", (8, 15)), ("feed_stall", "kis", (5, 10)),
     ("egw00201_storm", "kis", (15, 30))],
    [("redis_kill", "redis", (5, 15)), ("feed_drop", "kiwoom", (5, 10)), ("daemon_kill", "dagster_daemon", (20, 40))],
    [("credentials_refused", "kis", (20, 40)), ("exchange_http500", "kiwoom", (10, 20))],
    [("collector_sigkill", "collectors:1", (0, 0)), ("exchange_latency", "all", (15, 30))],
]
# Members added to FULL_GROUPS[index] after the schedule was in use. Their draws follow every
# group's own, so a seed still plays the older members at the same days, minutes and subjects.
FULL_LATE_MEMBERS: dict[int, list[Member]] = {
    4: [("disk_floor", "archive", (30, 60))],
}
QUICK_GROUPS: list[list[Member]] = [
    [("collector_sigkill", "collectors:2", (0, 0)), ("feed_stall", "kis", (5, 10))],
    [("collector_sigstop", "collectors:1", (8, 15)), ("redis_kill", "redis", (5, 10)),
     ("egw00201_storm", "kis", (10, 20))],
]


@dataclass(frozen=True)
class PlannedFault:
    id: str
    kind: str
    subject: str
    day: date
    minute: int          # exchange minute of the day (HH*60+MM) it is injected
    duration_min: int    # exchange minutes until it is cleared (0: a one-off, e.g. SIGKILL)

    @property
    def at_hhmm(self) -> str:
        return f"{self.minute // 60:02d}:{self.minute % 60:02d}"


def plan(seed: int, days: list[date], collectors: list[str], quick: bool) -> list[PlannedFault]:
    """The faults of a soak over `days`, in injection order. Groups are dealt to days in a seeded
    order (the quick list's two groups, one a day; the full list's five, one a day, the rest of
    the days without faults); each group starts at a seeded minute and its members a seeded 0-5
    minutes apart, so they overlap."""
    groups, late = (QUICK_GROUPS, {}) if quick else (FULL_GROUPS, FULL_LATE_MEMBERS)
    return plan_groups(seed, days, collectors, groups, late)


def plan_groups(seed: int, days: list[date], collectors: list[str], groups: list[list[Member]],
                late: dict[int, list[Member]]) -> list[PlannedFault]:
    rng = random.Random(seed)
    order = list(range(len(groups)))
    rng.shuffle(order)   # the same draws as shuffling the groups themselves: only the length counts
    faults: list[PlannedFault] = []
    starts: list[tuple[date, int, int]] = []
    for day, index in zip(days, order):
        start = rng.randint(EARLIEST_MINUTE, LATEST_MINUTE - 30)
        starts.append((day, index, start))
        _draw_members(groups[index], day, start, collectors, rng, faults)
    for day, index, start in starts:
        _draw_members(late.get(index, []), day, start, collectors, rng, faults)
    return sorted(faults, key=lambda f: (f.day, f.minute, f.id))


def _draw_members(members: list[Member], day: date, start: int, collectors: list[str], rng: random.Random,
                  faults: list[PlannedFault]) -> None:
    for kind, hint, (shortest, longest) in members:
        minute = start + rng.randint(0, 5)
        duration = rng.randint(shortest, longest)
        for subject in _subjects(hint, collectors, rng):
            faults.append(PlannedFault(id=f"f{len(faults) + 1:02d}-{kind}", kind=kind, subject=subject,
                                       day=day, minute=minute, duration_min=duration))


def _subjects(hint: str, collectors: list[str], rng: random.Random) -> list[str]:
    if hint == "collector":
        return [rng.choice(collectors)]
    if hint.startswith("collectors:"):
        count = min(int(hint.split(":")[1]), len(collectors))
        return sorted(rng.sample(collectors, count))
    return [hint]
