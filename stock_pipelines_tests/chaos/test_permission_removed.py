"""Chaos: write permission on the archive is taken away from a running collector: its trades
directories become immutable (`chattr +i`, which even root cannot write through: EPERM) once it
streams, before it creates its first trades file; skipped with the reason when chattr is refused
here (a failure in CI). The collector must stop at once (exit 1) with the path and the fix in its message, leave
only whole lines, and the pipeline recovers what it could not write."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.capabilities import require_capability
from stock_pipelines_tests.chaos.figures import (
    bars_lost,
    exchange_stats,
    record,
    run_pipeline,
    tick_bars_height,
)
from stock_pipelines_tests.collector.conftest import DAY, admin, end_the_day, pin, seoul
from stock_pipelines_tests.collector.test_process import (
    APP_KEY,
    APP_SECRET,
    collector_env,
    start_collector,
    stop,
    wait_streaming,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
COLLECTOR = "perm-1"


def _immutable(paths: list[Path], on: bool) -> subprocess.CompletedProcess:
    require_capability("chattr", shutil.which("chattr") is not None, "no chattr binary (Debian package e2fsprogs)")
    return subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], capture_output=True, text=True,
                          timeout=10, check=False)


def test_permission_removed_stops_the_collector_with_the_path_and_loses_nothing_written(
        tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    archive = tmp_path / "archive"
    locked: list[Path] = []
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=seoul(9, 59, 30), pinned=True,
                      speed=120, credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2",
                            STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.5")
        process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
        try:
            wait_streaming(process, client, COLLECTOR)
            trades = archive / COLLECTOR / "trades"
            trades.mkdir(parents=True, exist_ok=True)
            locked = [trades, *[p for p in trades.rglob("*") if p.is_dir()]]
            done = _immutable(locked, True)
            require_capability("chattr +i", done.returncode == 0,
                               f"chattr +i refused ({done.stderr.strip()}): needs root (CAP_LINUX_IMMUTABLE) "
                               "and a filesystem with the immutable flag (ext4, xfs, btrfs)")
            admin(url, "/admin/clock", {"pinned": False})
            started = time.monotonic()
            exit_code = process.wait(20)
            detect = round(time.monotonic() - started, 2)
        finally:
            stop(process)
            if locked:
                _immutable(locked, False)
        stderr = process.stderr.read()
        pin(url)
        end_the_day(url, env, monkeypatch)

        run = run_pipeline()

        raw = next(e.materialization.metadata for e in run.result.get_asset_materialization_events()
                   if e.asset_key.path == ["raw_ticks"])
        stats = exchange_stats(url)
        lost = bars_lost(url)
        outcome = f"collector exit {exit_code}, path reported; bars recovered" if lost == 0 else "FAILED"
        record("archive write permission removed", outcome, bars_lost=lost, calls=run.calls,
               lower_bound_calls=run.metadata.get("lower_bound_calls"), rate_limited=stats["rate_limited"],
               time_to_detect_s=detect, time_to_recover_s=run.seconds, tick_bars=tick_bars_height(),
               quarantined=raw["quarantined"].value)
    assert exit_code == 1, stderr[-1500:]
    assert f"cannot write archive path {trades}" in stderr and "permission denied" in stderr
    assert "Fix:" in stderr, stderr[-1500:]
    assert raw["quarantined"].value == 0  # only whole lines
    assert run.result.success and run.metadata["windows_unrecovered"] == 0
    assert lost == 0
