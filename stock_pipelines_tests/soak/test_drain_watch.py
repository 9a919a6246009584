"""The soak's drain ends the watch over "today" before the session after the week opens: every
sensor that watches today's collectors and archive is stopped, then the incident sensor is
evaluated once more at once (not at the daemon's next tick, which at the night speed would land
in that session and judge an archive nobody writes any more); the Dagster GraphQL it sends is
valid for the installed Dagster."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from stock_pipelines.market import SEOUL
from stock_pipelines.soak import dagster_stack
from stock_pipelines.soak.harness import Soak
from stock_pipelines.soak.options import SoakOptions

LAST_CLOSE_DRAIN = datetime(2026, 11, 24, 17, 31, tzinfo=SEOUL)   # the full week's drain starts here
NEXT_OPEN = datetime(2026, 11, 25, 9, 0, tzinfo=SEOUL)


class Stack:
    """What the drain asks of the Dagster stack, on a clock each call moves on."""

    def __init__(self, clock: list[datetime], step: timedelta, stopped_fails: bool = False) -> None:
        self.clock, self.step, self.stopped_fails = clock, step, stopped_fails
        self.calls: list[tuple] = []

    def stop_sensors(self, names):
        self.clock[0] += self.step
        if self.stopped_fails:
            raise RuntimeError("sensors still running after 60 s: ['incident_sensor']")
        self.calls.append(("stop", tuple(names)))

    def evaluate_sensor(self, name):
        self.clock[0] += self.step
        self.calls.append(("evaluate", name, self.clock[0]))
        return "opened 0, resolved 2, alerts delivered 2"

    def wait_for_runs(self, timeout_s, say, every_s):
        self.calls.append(("runs",))
        return True


def drained(step: timedelta, **stack_options) -> tuple[Stack, list[str]]:
    soak = Soak.__new__(Soak)   # the drain alone: no processes
    clock = [LAST_CLOSE_DRAIN]
    soak.options = SoakOptions.full_run()
    soak.days = [datetime(2026, 11, 24).date()]
    soak.stack, soak.notes = Stack(clock, step, **stack_options), []
    soak.now = lambda: clock[0]
    soak._drain()
    return soak.stack, soak.notes


def test_every_today_sensor_stops_before_the_incidents_last_evaluation_in_the_night():
    stack, notes = drained(timedelta(hours=1))   # each call an exchange hour (1.5 wall s at 2400x)
    assert [c[0] for c in stack.calls] == ["stop", "evaluate", "runs"]
    assert set(stack.calls[0][1]) == {"collector_heartbeat_sensor", "tick_archive_sensor", "incident_sensor"}
    assert stack.calls[1][1] == "incident_sensor" and stack.calls[1][2] < NEXT_OPEN
    assert notes == []


def test_an_evaluation_that_ends_in_the_next_session_is_reported():
    stack, notes = drained(timedelta(hours=8))
    assert stack.calls[1][2] > NEXT_OPEN
    assert notes == ["the incidents' last evaluation (opened 0, resolved 2, alerts delivered 2) ended at "
                     "2026-11-25 09:31, in the session after the week (opens 2026-11-25 09:00)"]


def test_sensors_that_cannot_be_stopped_are_reported_and_the_runs_still_drain():
    stack, notes = drained(timedelta(hours=1), stopped_fails=True)
    assert [c[0] for c in stack.calls] == ["runs"]
    assert notes == ["the sensors of today could not be stopped and evaluated for the drain: "
                     "sensors still running after 60 s: ['incident_sensor']"]


@pytest.mark.parametrize("name", ["SENSORS", "STOP_SENSOR", "SENSOR_CURSOR", "SENSOR_DRY_RUN"])
def test_the_drains_graphql_is_valid_for_this_dagster(name):
    assert validate(create_schema().graphql_schema, parse(getattr(dagster_stack, name))) == []
