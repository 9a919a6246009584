"""Chaos, the soak's costly case: a collector frozen (SIGSTOP) long enough to be called down by its
heartbeats, then continued, while a second collector of the same broker kept archiving half of its
symbols. The frozen collector's socket kept the exchange's frames, so once it has caught up its
archive lacks little or nothing, yet the heartbeat window says every one of its symbols may have
lost minutes. The recovery run made mid-session must ask the broker only for what the archive's
`cum` chain cannot prove complete: at most the true lower bound, computed from the simulator's
trades against the archive's bars, far below what the heartbeat window alone would cost, and
every bar up to the run equals the truth."""

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.heartbeat import HeartbeatStore
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.recovery.bars import gaps_from_frame
from stock_pipelines.recovery.plan import build_plan, floor_minute
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.chaos.figures import exchange_stats, record, run_pipeline
from stock_pipelines_tests.collector.conftest import DAY, admin, seoul
from stock_pipelines_tests.collector.test_process import (
    APP_KEY,
    APP_SECRET,
    collector_env,
    start_collector,
    stop,
    wait_streaming,
)
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import lost_bar_calls
from stock_pipelines_tests.truth import truth_bars
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SPEED, FROZEN, WITNESS = 60, "kis-a", "kis-b"
# frozen 3 s wall until called stale (3 beats of 1 s), then 5 s more: a heartbeat hole of about 8
# exchange minutes, less the store's merge tolerance (2 beats: 2 minutes)
FREEZE_WALL_S = 5.0
FREEZE_MINUTES = int(FREEZE_WALL_S * SPEED / 60)


def _archived_until(archive: Path, collector: str) -> datetime | None:
    """The exchange time of the newest trade the collector has written to its archive."""
    files = sorted((archive / collector / "trades").glob("*/*.jsonl"))
    if not files:
        return None
    lines = files[-1].read_bytes().splitlines()[-20:]
    stamps = [json.loads(line)["ts"] for line in lines if line.endswith(b"}")]
    return datetime.fromtimestamp(max(stamps) / 1e6, UTC) if stamps else None


def _archive_size(archive: Path) -> int:
    return sum(f.stat().st_size for f in archive.glob("*/trades/*/*.jsonl"))


def _wait_quiet(archive: Path, quiet_s: float = 1.5, timeout_s: float = 30.0) -> None:
    """Until no collector has written a trade for `quiet_s`: they took in all the exchange sent."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        size = _archive_size(archive)
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)
    raise AssertionError(f"the archive kept growing for {timeout_s} s after the exchange stopped")


def _bars_before(url, until: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(truth, minute_bars) of the minutes before `until`: the last one was still trading at the run."""
    before = pl.col("minute") < until.astimezone(UTC)
    truth = truth_bars(url).filter(before)
    got = lake.read_partition("minute_bars", DAY).select(truth.columns).filter(before)
    return truth.sort("symbol", "minute"), got.sort("symbol", "minute")


def _heartbeat_only_calls(symbols: list[str]) -> int:
    """Calls the day's gap windows of `symbols` would cost without the chain (no other collector
    follows them: no tier 1 either)."""
    gaps = gaps_from_frame(lake.read_partition("gap_report", DAY))
    mine = [g for g in gaps if set(g.symbols) & set(symbols)]
    plan = build_plan(mine, DAY, today=DAY, activity={}, calendar=krx_calendar())
    return sum(w.calls for w in plan if w.symbol in symbols)


def test_a_frozen_collector_costs_only_what_the_cum_chain_cannot_prove(tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    archive = tmp_path / "archive"
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=seoul(8, 58), pinned=True,
                      speed=SPEED, credentials={APP_KEY: APP_SECRET}) as url:
        codes = list(url.exchange.day.codes)
        alone = codes[5:]  # followed by the frozen collector only
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2",
                            STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="1.0")
        store = HeartbeatStore(client, clock=url.exchange.clock.now)
        frozen = start_collector(env, ",".join(codes), FROZEN)
        witness = start_collector(env, ",".join(codes[:5]), WITNESS)
        try:
            wait_streaming(frozen, client, FROZEN)
            wait_streaming(witness, client, WITNESS)
            admin(url, "/admin/clock", {"pinned": False})
            wait_until(lambda: (b := store.latest(FROZEN)) and b.last_trade_at
                       and b.last_trade_at >= seoul(9, 2) and FROZEN not in store.stale_collectors(),
                       30, "a fresh heartbeat of the collector")
            os.kill(frozen.pid, signal.SIGSTOP)
            wait_until(lambda: FROZEN in store.stale_collectors(), 15, "the frozen collector called stale")
            time.sleep(FREEZE_WALL_S)
            os.kill(frozen.pid, signal.SIGCONT)
            resumed_at = url.exchange.clock.now()
            wait_until(lambda: (at := _archived_until(archive, FROZEN))
                       and at > resumed_at + timedelta(minutes=1),
                       30, "the frozen collector's archive caught up a minute past the freeze")
            pinned_at = datetime.fromisoformat(admin(url, "/admin/clock", {"pinned": True})["now"])
            _wait_quiet(archive)
            # beats at the run's instant from both: no heartbeat hole reaches it (a loaded machine may
            # still delay the frozen collector's beats behind its catch-up)
            wait_until(lambda: not {FROZEN, WITNESS} & set(store.stale_collectors()), 30,
                       "both collectors beating at the pinned instant")
            for process in (frozen, witness):
                process.send_signal(signal.SIGTERM)
                process.wait(15)
        finally:
            stop(frozen)
            stop(witness)
        for name, value in env.items():
            if name.startswith(("KIS_", "STOCK_PIPELINES_", "REDIS_URL")):
                monkeypatch.setenv(name, value)
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(pinned_at))  # the run: today, mid-session

        run = run_pipeline()

        stats = exchange_stats(url)
        until = floor_minute(pinned_at)
        truth, got = _bars_before(url, until)
        lost = truth.join(got, on=truth.columns, how="anti").height
        bound = lost_bar_calls(url, before=until)
        without_chain = _heartbeat_only_calls(alone)
        record("collector frozen, feed kept", "recovered within the bound" if lost == 0 else "FAILED",
               bars_lost=lost, calls=run.calls, lower_bound_calls=bound, rate_limited=stats["rate_limited"],
               retries=run.retries, time_to_recover_s=run.seconds, calls_without_chain=without_chain,
               pruned_symbol_minutes=run.metadata.get("chain_pruned_symbol_minutes"),
               **{k: run.metadata.get(k) for k in ("missing_symbol_minutes", "calls_planned",
                                                    "windows_planned")})
    assert run.result.success and run.metadata["windows_unrecovered"] == 0
    assert lost == 0, f"{lost} bars before {until:%H:%M} differ from the exchange's truth"
    # the heartbeats called the 5 symbols only the frozen collector follows missing for longer than
    # the freeze (a call each at least); the chain proved those minutes whole
    assert without_chain >= len(alone)
    assert run.metadata["chain_pruned_symbol_minutes"] >= len(alone) * FREEZE_MINUTES
    # what the archive truly lacks, no more (0 when the collector caught up without a loss)
    assert run.calls == bound < without_chain
