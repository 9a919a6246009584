"""Chaos: Redis (rate limiter, breaker, heartbeats) is killed in the middle of a back-fill and
comes back empty after DOWN_S seconds.

Found by this suite and fixed: the breaker's Redis state store used to raise ConnectionError out
of `BreakerGate` and fail the recovered_minute_bars step. Now the rate limiter falls back to its
local share, the gate counts failures locally while Redis is away, and the same run recovers
every bar without a rate-limit reply."""

import threading
import time

import pytest

from stock_pipelines_tests.chaos.figures import bars_lost, exchange_stats, record, run_pipeline, set_fault
from stock_pipelines_tests.chaos.test_exchange_faults import _archive_with_outages
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import pipeline_env  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
DOWN_S = 1.5


def _data_calls(url) -> int:
    return sum(n for name, n in exchange_stats(url)["calls"].items() if "chart" in name)


def _kill_redis_once_backfill_runs(url, redis_server) -> tuple[threading.Thread, dict]:
    killed: dict[str, float] = {}

    def chaos() -> None:
        deadline = time.monotonic() + 30
        while _data_calls(url) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        killed["calls_before"] = _data_calls(url)
        redis_server.kill()
        time.sleep(DOWN_S)
        redis_server.start()
        killed["back"] = time.monotonic()

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    return thread, killed


def _slow_backfill(url, monkeypatch) -> None:
    # 5 calls/s and 150 ms a reply, so that Redis dies while the back-fill runs
    monkeypatch.setenv("KIS_RATE_LIMIT_PER_S", "5")
    set_fault(url, mode="latency", latency_ms=150)


def _failure_text(run) -> str:
    texts = []
    for event in run.result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return " ".join(texts)


def test_redis_killed_mid_backfill_is_reported_and_a_rerun_loses_no_bar(
        pipeline_env, redis_server, monkeypatch):
    url, tmp_path = pipeline_env
    _archive_with_outages(tmp_path)
    _slow_backfill(url, monkeypatch)
    thread, killed = _kill_redis_once_backfill_runs(url, redis_server)
    first = run_pipeline()
    thread.join(timeout=35)
    assert "back" in killed, "the chaos thread never saw the back-fill start"
    reported = _failure_text(first)

    second = run_pipeline() if not first.result.success else first

    stats = exchange_stats(url)
    lost = bars_lost(url)
    outcome = ("recovered in-run" if first.result.success
               else "step failed (Redis ConnectionError); re-run recovered")
    record("redis killed mid back-fill", outcome if lost == 0 else "FAILED", bars_lost=lost,
           calls=sum(n for name, n in stats["calls"].items() if "chart" in name),
           lower_bound_calls=second.metadata.get("lower_bound_calls"), rate_limited=stats["rate_limited"],
           retries=second.retries,
           time_to_recover_s=round(first.seconds + (second.seconds if second is not first else 0), 2),
           redis_down_s=DOWN_S, calls_before_kill=killed.get("calls_before"))
    if not first.result.success:
        assert "ConnectionError" in reported or "Connection refused" in reported, reported[:300]
    assert second.result.success
    assert lost == 0
    assert stats["rate_limited"] == 0  # the local fallback share kept it under the limit


def test_redis_killed_mid_backfill_recovers_in_the_same_run(pipeline_env, redis_server, monkeypatch):
    url, tmp_path = pipeline_env
    _archive_with_outages(tmp_path)
    _slow_backfill(url, monkeypatch)
    thread, killed = _kill_redis_once_backfill_runs(url, redis_server)
    run = run_pipeline()
    thread.join(timeout=35)
    assert "back" in killed
    assert run.result.success
    assert bars_lost(url) == 0
