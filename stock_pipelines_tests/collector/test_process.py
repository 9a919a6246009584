"""`stock-pipelines collector run` as a real process: self-diagnosis, SIGTERM leaves complete files
and a final heartbeat, SIGKILL loses at most the flush window and the gap machinery recovers it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.cli import main
from stock_pipelines.collector.status import read_status
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.heartbeat import HeartbeatStore, Status
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.truth import truth_bars
from stock_pipelines_tests.waiting import wait_until

from .conftest import DAY, US, admin, archived, end_the_day, keys, pin, seoul, truth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

APP_KEY, APP_SECRET = "proc-key", "proc-secret-do-not-log"
COMMAND = [sys.executable, "-m", "stock_pipelines.cli", "collector", "run"]


def collector_env(tmp_path: Path, url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "STOCK_PIPELINES_", "REDIS_URL"))}
    env.update(
        KIS_BASE_URL=str(url), KIS_APP_KEY=APP_KEY, KIS_APP_SECRET=APP_SECRET, REDIS_URL=redis_url,
        STOCK_PIPELINES_DATA_DIR=str(tmp_path / "data"),
        STOCK_PIPELINES_ARCHIVE_DIR=str(tmp_path / "archive"),
        STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES="1", STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="0.1",
        STOCK_PIPELINES_COLLECTOR_CLOCK="exchange",
    )
    env.update(extra)
    return env


def start_collector(env: dict[str, str], symbols: str, collector_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*COMMAND, "--symbols", symbols, "--id", collector_id],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_streaming(process: subprocess.Popen, client, collector_id: str, timeout_s: float = 30.0) -> dict:
    """The collector's start line, then its Redis status until every shard is connected."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert line and line[0].strip(), f"no start line (exit {process.poll()}): {process.stderr.read()[-2000:]}"
    started = json.loads(line[0])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(client, collector_id).get(collector_id)
        if status and status["connected"] == started["shards"]:
            return started
        time.sleep(0.05)
    raise TimeoutError("the collector never connected every shard")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_self_diagnosis_names_every_problem_and_exits_1(tmp_path, redis_server):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    env = collector_env(tmp_path, "http://127.0.0.1:9", "redis://127.0.0.1:9/0",
                        STOCK_PIPELINES_ARCHIVE_DIR=str(readonly))
    del env["KIS_APP_SECRET"]
    if os.geteuid() == 0:  # root writes anywhere: make the archive root a file instead
        readonly.chmod(0o700)
        blocker = tmp_path / "blocker"
        blocker.write_text("not a directory")
        env["STOCK_PIPELINES_ARCHIVE_DIR"] = str(blocker)
    done = subprocess.run([*COMMAND, "--symbols", "005930"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "collector kis-1: KIS_APP_SECRET not set in the environment"
    assert lines[1].startswith("collector kis-1: redis: not reachable")
    assert lines[2].startswith("collector kis-1: archive: cannot write")
    assert len(lines) == 3  # the broker check needs a key pair: not run without a secret

    with run_exchange(day=DAY, symbols=4, pinned=True, credentials={APP_KEY: "another-secret"}) as url:
        env = collector_env(tmp_path, url, redis_server.url,
                            STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES=str(10**18))
        done = subprocess.run([*COMMAND, "--symbols", "005930"], env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "below the floor" in lines[0]
    assert "no WebSocket approval key (HTTP 403 EGW00105)" in lines[1]
    assert APP_SECRET not in done.stderr


def test_sigterm_leaves_complete_files_and_a_final_heartbeat(tmp_path, redis_server, monkeypatch, capsys):
    client = redis_server.client()
    with run_exchange(day=DAY, seed=12, symbols=12, start=seoul(9, 30), speed=60,
                      credentials={APP_KEY: APP_SECRET}) as url:
        codes = ",".join(url.exchange.day.codes)
        process = start_collector(collector_env(tmp_path, url, redis_server.url), codes, "term-1")
        try:
            started = wait_streaming(process, client, "term-1")
            time.sleep(1.5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            stop(process)
        stderr = process.stderr.read()
    assert started["shards"] == 1 and APP_SECRET not in stderr

    root = tmp_path / "archive" / "term-1"
    files = sorted(root.rglob("*.jsonl"))
    assert files and all(f.read_bytes().endswith(b"\n") for f in files)
    system = [json.loads(x) for x in (root / "system" / "20261120.jsonl").read_text().splitlines()]
    assert system[0]["event"] == "UP" and system[-1]["event"] == "DOWN"
    assert system[-1]["detail"]["status"] == "stopped"
    result = archived(tmp_path / "archive")
    assert result.stats.quarantined == 0 and result.stats.duplicates == 0
    assert result.ticks.height == system[-1]["detail"]["counters"]["sink"]["archived"] > 0
    assert result.ticks["seq"].sort().to_list() == list(range(1, result.ticks.height + 1))
    assert HeartbeatStore(client).latest("term-1").status is Status.STOPPING

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["collector", "status", "--id", "term-1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["collector"] == "term-1" and shown["state"] == "stopped"
    assert shown["counters"]["sink"]["archived"] == result.ticks.height
    assert set(shown["counters"]) == {"receive", "validate", "guard", "enrich", "sink"}


ASSETS = [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars]


def test_sigkill_loses_at_most_the_flush_window_and_the_gap_machinery_recovers_it(
        tmp_path, redis_server, monkeypatch):
    client = redis_server.client()
    speed, flush_s = 120, 0.2
    with run_exchange(day=DAY, seed=13, symbols=10, activity=0.5, start=(start := seoul(8, 58)), pinned=True,
                      speed=speed,
                      credentials={APP_KEY: APP_SECRET}) as url:
        env = collector_env(tmp_path, url, redis_server.url,
                            STOCK_PIPELINES_COLLECTOR_FLUSH_INTERVAL_S=str(flush_s))
        process = start_collector(env, ",".join(url.exchange.day.codes), "kill-1")
        try:
            wait_streaming(process, client, "kill-1")
            admin(url, "/admin/clock", {"pinned": False})
            beats = HeartbeatStore(client)
            wait_until(lambda: (b := beats.latest("kill-1")) and b.last_trade_at and b.last_trade_at >= seoul(9, 4),
                       30, "a heartbeat vouching for trades up to 09:04 (six minutes of the open)")
            process.kill()
            killed_at = pin(url)
            process.wait(10)
        finally:
            stop(process)

        expected = truth(url.exchange.day, killed_at, start)
        result = archived(tmp_path / "archive")
        assert result.stats.quarantined == 0 and result.stats.duplicates == 0  # whole lines only
        missing = set(expected) - keys(result)
        # (symbol, minute) the kill cut through: some of its trades archived, some lost
        minute_of = {k: expected[k] - expected[k] % (60 * US) for k in expected}
        cut = {(k[0], minute_of[k]) for k in missing} & {(k[0], minute_of[k]) for k in keys(result)}
        assert keys(result) <= set(expected) and len(expected) > 1000
        # The archive is a prefix of each symbol's trades: a kill costs only the tail, never a hole ...
        for code, cums in result.ticks.group_by("symbol").agg(pl.col("cum").sort()).iter_rows():
            assert cums == sorted(c for (sym, c) in expected if sym == code and c <= cums[-1]), code
        # ... and what the collector had received reached the files within the flush window: the
        # newest line on disk was received at most one flush interval (plus scheduling) before the kill.
        newest_rx = int(result.ticks["rx"].max().timestamp() * US)
        assert newest_rx >= killed_at - int((flush_s + 0.5) * speed * US), (killed_at - newest_rx) / US
        # Every lost trade lies after the last heartbeat (beats vouch only for archived trades), inside
        # the downtime the gap machinery sees; a lagging collector loses its backlog there, not before.
        last_beat = max(end for _, end in HeartbeatStore(client).up_intervals("kill-1", DAY))
        assert all(expected[k] >= int(last_beat.timestamp() * US) for k in missing)

        end_the_day(url, env, monkeypatch)
        result = dg.materialize(ASSETS, partition_key=DAY.isoformat(),
                                instance=dg.DagsterInstance.ephemeral(), resources=resources())
        assert result.success
        expected_bars = truth_bars(url.exchange.day)

    before = lake.read_partition("tick_minute_bars", DAY)
    final = lake.read_partition("minute_bars", DAY)
    assert 0 < before.height < expected_bars.height
    got = final.select(expected_bars.columns).sort("symbol", "minute")
    missing_bars = expected_bars.join(got, on=["symbol", "minute"], how="anti")
    # every bar is back, the closing print's (stamped 15:30, outside [open, close)) included
    assert got.equals(expected_bars), missing_bars
    # the minutes the kill cut through were short in the archive and are whole again
    assert cut, "no minute was partly archived: the kill did not cut through one"
    edges = pl.DataFrame({"symbol": [s for s, _ in cut], "minute": [m for _, m in cut]},
                         schema={"symbol": pl.String, "minute": pl.Int64}).with_columns(
        pl.col("minute").cast(pl.Datetime("us", "UTC")))
    at_edges = expected_bars.join(edges, on=["symbol", "minute"]).sort("symbol", "minute")
    short = before.select(expected_bars.columns).join(edges, on=["symbol", "minute"]).sort("symbol", "minute")
    assert short.height == len(cut) and (short["volume"] < at_edges["volume"]).all(), (short, at_edges)
    assert got.join(edges, on=["symbol", "minute"]).sort("symbol", "minute").equals(at_edges)
    assert set(final["source"]) >= {"ticks", "rest_kis"}
