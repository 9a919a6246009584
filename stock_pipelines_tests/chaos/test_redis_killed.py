"""Chaos: Redis (rate limiter, breaker, heartbeats) is killed in the middle of a back-fill and
comes back empty after DOWN_S seconds.

Found by this suite and fixed: the breaker's Redis state store used to raise ConnectionError out
of `BreakerGate` and fail the recovered_minute_bars step. Now the rate limiter falls back to its
local share, the gate counts failures locally while Redis is away, and the same run recovers
every bar without a rate-limit reply; the test proves the outage fell inside the back-fill."""

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
    """Kill Redis once the back-fill has made a few data calls; bring it back DOWN_S later. The
    data-call counts at both moments show whether the outage fell inside the back-fill."""
    killed: dict[str, float] = {}

    def chaos() -> None:
        deadline = time.monotonic() + 30
        while _data_calls(url) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        killed["calls_at_kill"] = _data_calls(url)
        redis_server.kill()
        time.sleep(DOWN_S)  # the outage itself: Redis stays down this long
        killed["calls_at_restart"] = _data_calls(url)
        redis_server.start()
        killed["back"] = time.monotonic()

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    return thread, killed


def _slow_backfill(url, monkeypatch) -> None:
    # 5 calls/s and 150 ms a reply, so that Redis dies while the back-fill runs
    monkeypatch.setenv("KIS_RATE_LIMIT_PER_S", "5")
    set_fault(url, mode="latency", latency_ms=150)


def test_redis_killed_mid_backfill_recovers_in_the_same_run(pipeline_env, redis_server, monkeypatch):
    url, tmp_path, res = pipeline_env
    _archive_with_outages(tmp_path)
    _slow_backfill(url, monkeypatch)
    thread, killed = _kill_redis_once_backfill_runs(url, redis_server)
    run = run_pipeline(bound=res)
    thread.join(timeout=35)

    stats = exchange_stats(url)
    calls = sum(n for name, n in stats["calls"].items() if "chart" in name)
    lost = bars_lost(url)
    record("redis killed mid back-fill", "recovered in-run" if run.result.success and lost == 0 else "FAILED",
           bars_lost=lost, calls=calls, lower_bound_calls=run.metadata.get("lower_bound_calls"),
           rate_limited=stats["rate_limited"], retries=run.retries, time_to_recover_s=run.seconds,
           redis_down_s=DOWN_S, calls_before_kill=killed.get("calls_at_kill"),
           calls_while_down=killed.get("calls_at_restart", 0) - killed.get("calls_at_kill", 0))
    assert "back" in killed, "the chaos thread never saw the back-fill start"
    # the outage overlapped the back-fill: it had started when Redis died and went on calling
    # the broker while Redis was down ...
    assert 0 < killed["calls_at_kill"] < killed["calls_at_restart"], killed
    assert run.result.success, "the back-fill step failed while Redis was away"
    # ... and still had calls to make after Redis came back
    assert killed["calls_at_restart"] < calls, killed | {"calls": calls}
    assert lost == 0
    assert stats["rate_limited"] == 0  # the local fallback share kept it under the limit
