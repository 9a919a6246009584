"""Chaos: the collector's archive disk fills up (a 256 KiB tmpfs; skipped with the reason when
this is not root or the mount fails). The writer reports DISK_LOW once the free-space floor is
crossed and refuses further trades (counted, their seq numbers missing) instead of writing torn
lines; every line on the disk is whole. The pipeline then recovers every refused trade's bar: the
DISK_LOW..DISK_OK stretch (or DISK_LOW to the close) is a loss window although heartbeats went on."""

import json
import time

import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.archive.test_writer import tiny_tmpfs  # noqa: F401 (fixture)
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
COLLECTOR = "disk-1"


def system_events(archive) -> list[str]:
    path = archive / COLLECTOR / "system" / f"{DAY:%Y%m%d}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_disk_floor_reports_disk_low_and_the_refused_trades_are_recovered(
        tmp_path, tiny_tmpfs, redis_server, monkeypatch):  # noqa: F811
    client = redis_server.client()
    archive = tiny_tmpfs / "archive"
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=seoul(8, 58), pinned=True, speed=120,
                      credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url, STOCK_PIPELINES_ARCHIVE_DIR=str(archive),
                            STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES=str(160 * 1024),
                            STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S="0.2")
        process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
        try:
            wait_streaming(process, client, COLLECTOR)
            admin(url, "/admin/clock", {"pinned": False})
            started = time.monotonic()
            detect = None
            while time.monotonic() - started < 20 and process.poll() is None:
                if "DISK_LOW" in system_events(archive):
                    detect = round(time.monotonic() - started, 2)
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            process.terminate()
            process.wait(15)
        finally:
            stop(process)
        stderr = process.stderr.read()
        pin(url)
        end_the_day(url, env, monkeypatch)

        run = run_pipeline()

        raw = next(e.materialization.metadata for e in run.result.get_asset_materialization_events()
                   if e.asset_key.path == ["raw_ticks"])
        stats = exchange_stats(url)
        lost = bars_lost(url)
        floor_gaps = lake.read_partition("gap_report", DAY).filter(pl.col("reason").str.contains("disk-space floor"))
        record("archive disk full (tmpfs, floor)", "DISK_LOW reported; bars recovered" if lost == 0
               else "DISK_LOW reported; bars refused while beating NOT recovered",
               bars_lost=lost, calls=run.calls, lower_bound_calls=run.metadata.get("lower_bound_calls"),
               rate_limited=stats["rate_limited"], time_to_detect_s=detect, time_to_recover_s=run.seconds,
               tick_bars=tick_bars_height(), gaps=run.metadata.get("gaps"), exit_code=process.returncode,
               quarantined=raw["quarantined"].value)
    assert detect is not None, f"no DISK_LOW within 20 s (exit {process.returncode}): {stderr[-1000:]}"
    assert raw["quarantined"].value == 0  # whole lines only on the full disk
    assert run.result.success and run.metadata["windows_unrecovered"] == 0
    assert floor_gaps.height > 0, "the DISK_LOW stretch did not become a gap"
    assert lost == 0, f"{lost} bars lost: trades refused at the disk floor were not recovered"
