"""Chaos: the exchange misbehaves during a back-fill of a day with collector outages.

Retryable faults (500s, EGW00201 rate-limit replies, latency) cost calls and seconds but no
bars: minute_bars equal the truth built from the exchange's trades. Refused credentials stop the
run at once with a clear auth failure, a bounded number of calls and the breaker PERMANENT_OPEN
(no retry loop)."""

import time
from datetime import datetime
from datetime import time as clock_time

import pytest
import redis

from stock_pipelines.brokers.tokens import Token, TokenCache
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.sources import breaker_for
from stock_pipelines.resilience.breaker import State
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines_tests.chaos.figures import bars_lost, exchange_stats, record, run_pipeline, set_fault
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import (  # noqa: F401 (fixture)
    DAY,
    SEED,
    SYMBOLS,
    calls_for_outages,
    lost_bar_calls,
    pipeline_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
# Each outage starts and ends inside a minute: its edge minutes are partly archived and must be
# made whole too (bars_lost compares every bar with the truth).
OUTAGES = ((clock_time(10, 0, 25), clock_time(10, 30, 40)), (clock_time(13, 10, 5), clock_time(13, 25, 50)))


def _outages() -> list[Outage]:
    return [Outage(datetime.combine(DAY, a, SEOUL), datetime.combine(DAY, b, SEOUL)) for a, b in OUTAGES]


def _archive_with_outages(tmp_path) -> int:
    outages = _outages()
    archived = write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS, outages=outages)
    assert archived.trades_missing > 0
    return archived.trades_missing


@pytest.mark.parametrize(
    ("scenario", "fault"),
    [
        ("exchange http500 p=0.3", {"mode": "http500", "probability": 0.3}),
        ("exchange EGW00201 storm p=0.5", {"mode": "egw00201", "probability": 0.5}),
        ("exchange latency 300 ms", {"mode": "latency", "latency_ms": 300}),
    ],
)
def test_retryable_exchange_faults_cost_calls_not_bars(pipeline_env, scenario, fault):
    url, tmp_path, res = pipeline_env
    _archive_with_outages(tmp_path)
    set_fault(url, **fault)

    run = run_pipeline(bound=res)

    stats = exchange_stats(url)
    lost = bars_lost(url)
    bound = lost_bar_calls(url)  # what the archive truly lost, from the exchange's truth
    record(scenario, "recovered" if run.result.success and lost == 0 else "FAILED",
           bars_lost=lost, calls=run.calls, lower_bound_calls=bound,
           rate_limited=stats["rate_limited"], retries=run.retries, time_to_recover_s=run.seconds,
           faults_injected={k: v for k, v in stats.items() if k.startswith("fault:")})
    assert run.result.success
    assert lost == 0, f"{lost} bars of the exchange's truth missing after {scenario}"
    assert run.metadata["windows_unrecovered"] == 0
    # every extra call is a retry of an injected fault, nothing else
    assert run.calls == bound + sum(run.retries.values())
    if fault["mode"] != "latency":
        assert sum(run.retries.values()) > 0
    assert stats["rate_limited"] == 0  # the client's own limiter kept it under the real limit


def test_unauthorized_stops_at_once_with_the_breaker_permanently_open(pipeline_env, redis_server):
    url, tmp_path, res = pipeline_env
    _archive_with_outages(tmp_path)
    # A token issued two minutes ago and revoked since: the client may re-issue at once (KIS allows
    # one issue a minute), is refused again and must stop there.
    now = time.time()
    cache = TokenCache(tmp_path / "data" / ".tokens", "kis", "e2e-key")
    cache.get(lambda: Token("revoked", now + 86400, now - 120))
    set_fault(url, mode="unauthorized")
    started = time.monotonic()

    run = run_pipeline(bound=res)

    detect = round(time.monotonic() - started, 2)
    stats = exchange_stats(url)
    breaker = breaker_for("kis", redis.Redis.from_url(redis_server.url))
    checks = {c.check_name: c.passed for c in run.result.get_asset_check_evaluations()}
    lost = bars_lost(url)
    unrecovered = run.metadata.get("windows_unrecovered")
    record("exchange unauthorized", f"partial result reported: {unrecovered} windows "
           f"unrecovered, breaker {breaker.state}", bars_lost=lost, calls=run.calls,
           lower_bound_calls=calls_for_outages(_outages(), SYMBOLS), rate_limited=stats["rate_limited"],
           retries=run.retries, time_to_detect_s=detect, tokens_issued=stats["tokens_issued"])
    assert run.result.success  # the run itself completes with what it has ...
    assert "refused the credentials" in run.metadata["stopped"]  # ... and says why it stopped
    assert run.metadata["windows_unrecovered"] == run.metadata["windows_planned"] > 0
    assert checks["every_gap_recovered"] is False
    assert lost > 0  # the outages' bars are reported missing, not invented
    assert breaker.state is State.PERMANENT_OPEN
    # no retry loop: one refused call per executor worker, one re-issued token, one more refusal
    assert run.calls <= 8 and stats["tokens_issued"] <= 1
    assert detect < 15
