"""Every step that calls a broker is in the broker pool, and every step in the pool calls one.

Which steps call the broker is observed, not listed: the pre-flight and the end-of-day job run
against the simulated exchange (in process, one step at a time), every HTTP request to it is
timestamped, and each request is attributed to the step running at that moment (the run's
STEP_START .. STEP_SUCCESS/FAILURE events).
"""

import time

import dagster as dg
import httpx
import pytest

from stock_pipelines.defs.broker_steps import BROKER_POOL
from stock_pipelines.defs.resources import PreflightResource
from stock_pipelines_tests.resilience.test_kill_switch_runs import (  # noqa: F401 - fixtures
    DAY,
    broker_calls,
    day,
    exchange,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

API_PATHS = ("/oauth2/", "/uapi/", "/api/")  # the broker's REST API (KIS, Kiwoom), as the simulator serves it
ENDS = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[entry.step_key] = entry.timestamp
        elif event.event_type in ENDS:
            ends[entry.step_key] = entry.timestamp
    return {step: (starts[step], ends[step]) for step in starts if step in ends}


def test_the_steps_that_call_a_broker_are_exactly_those_in_the_broker_pool(day, monkeypatch):  # noqa: F811
    from stock_pipelines.definitions import defs

    requests: list[float] = []
    send = httpx.Client.send

    def timed_send(self, request, *args, **kwargs):
        if str(request.url).startswith(day.url) and request.url.path.startswith(API_PATHS):
            requests.append(time.time())
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", timed_send)
    # the pre-flight takes the day's broker resource; the shared test machine's load is not its finding
    preflight = PreflightResource(max_load_per_cpu=1000, min_available_memory_mb=1)
    bound = {**day.resources, "preflight": preflight}
    before = broker_calls(day.url)
    instance = dg.DagsterInstance.ephemeral()
    runs = []
    for name in ("preflight_job", "end_of_day_job"):
        job = defs.resolve_job_def(name)
        partition = {"partition_key": DAY.isoformat()} if name == "end_of_day_job" else {}
        result = job.execute_in_process(instance=instance, raise_on_error=False, resources=bound,
                                        **partition)
        runs.append((job, result))
    seen = list(requests)
    assert broker_calls(day.url) - before == len(seen) > 0  # the observer missed no call the simulator counted

    calling: set[str] = set()
    pooled: set[str] = set()
    unattributed = list(seen)
    for job, result in runs:
        intervals = step_intervals(instance, result.run_id)
        for step, (start, end) in intervals.items():
            inside = [t for t in seen if start <= t <= end]
            if inside:
                calling.add(step)
                unattributed = [t for t in unattributed if t not in inside]
        pooled |= {node.name for node in job.graph.nodes if node.definition.pool == BROKER_POOL}
    assert not unattributed  # every request happened inside one step
    assert calling == pooled
    assert {"preflight_checks", "recovered_minute_bars", "quality_broker_day_volumes",
            "quality_broker_sample"} <= calling
