"""What the hot standby costs: the real collector CLI on `--source kis --fallback kiwoom` against
`sim exchange` (in this process, market running), `--standby cold` then `--standby hot`, over the
same stretch of the same day.

    .venv/bin/python benchmarks/hot_standby.py [--symbols 40] [--speed 60] [--seconds 10]

Printed a mode: the collector process's CPU seconds while streaming (utime + stime from /proc,
read before the stop), WebSocket connections each broker's side of the exchange accepted, trades received (parsed), dropped
as duplicates and archived, and the bytes of its trade files. The hot standby should archive the
same trades in the same bytes, receive about twice as many, and hold twice the sessions.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stock_pipelines.sim.runner import run_exchange  # noqa: E402
from stock_pipelines_tests.collector.conftest import DAY, admin, pin, seoul  # noqa: E402
from stock_pipelines_tests.collector.test_kiwoom_feed import (  # noqa: E402
    CREDENTIALS,
    _drain,
    _env,
    _start,
    _status,
    _stop,
)
from stock_pipelines_tests.collector.test_process import wait_streaming  # noqa: E402
from stock_pipelines_tests.conftest import RedisServer  # noqa: E402
from stock_pipelines_tests.waiting import wait_until  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_mode(tmp: Path, redis: RedisServer, mode: str, symbols: int, speed: float, seconds: float) -> dict:
    client, cid = redis.client(), f"bench-{mode}"
    work = tmp / mode
    with run_exchange(day=DAY, seed=41, symbols=symbols, start=seoul(10, 0), pinned=True, speed=speed,
                      credentials=CREDENTIALS) as url:
        env = _env(work, url, redis.url)
        process = _start(env, list(url.exchange.day.codes), cid, "--source", "kis", "--fallback", "kiwoom",
                         "--standby", mode)
        try:
            wait_streaming(process, client, cid)
            if mode == "hot":
                wait_until(lambda: _status(client, cid).get("standby_live") is True, 30, "the standby live")
            cpu_before = cpu_seconds(process.pid)
            admin(url, "/admin/clock", {"pinned": False})
            time.sleep(seconds)
            sessions = admin(url, "/admin/stats", None)
            pin(url)
            _drain(client, cid)
            cpu = cpu_seconds(process.pid) - cpu_before
            status = _status(client, cid)
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        finally:
            _stop(process)
    counters = status["counters"]
    trade_files = list((work / "archive" / cid / "trades").rglob("*.jsonl"))
    return {"mode": mode, "cpu_s": round(cpu, 2),
            "sessions": {k: sessions.get(k, 0) for k in ("ws_connections", "kiwoom_ws_connections")},
            "received": counters["validate"]["records"], "duplicates": counters["guard"]["duplicates"],
            "archived": counters["sink"]["archived"], "by_broker": counters["sink"]["by_broker"],
            "trade_bytes": sum(p.stat().st_size for p in trade_files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="wall seconds of market a mode")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "redis").mkdir()
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            for mode in ("cold", "hot"):
                result = run_mode(tmp, redis, mode, args.symbols, args.speed, args.seconds)
                results.append(result)
                print(f"{mode}: {result['cpu_s']} CPU s, sessions {result['sessions']}, "
                      f"received {result['received']}, duplicates {result['duplicates']}, "
                      f"archived {result['archived']} {result['by_broker']}, {result['trade_bytes']} bytes",
                      flush=True)
        finally:
            redis.stop()
    cold, hot = results
    summary = {"symbols": args.symbols, "speed": args.speed, "seconds": args.seconds, "runs": results,
               "cpu_per_1k_archived": {r["mode"]: round(1000 * r["cpu_s"] / max(r["archived"], 1), 3)
                                       for r in results},
               "hot_over_cold_cpu_per_trade": round(
                   (hot["cpu_s"] / max(hot["archived"], 1)) / max(cold["cpu_s"] / max(cold["archived"], 1), 1e-9),
                   2)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
