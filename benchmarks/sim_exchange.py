"""Simulated exchange: start time and memory with a full-market (2,700-symbol) day.

Goals: `sim exchange` accepts requests in under 2 s and serves a 2,700-symbol day in
under 1 GiB. Baseline, measured in the same run: the default 40-symbol day.

For each universe size, the exchange runs as its own process (`stock-pipelines sim exchange`).
Ready time, the headline and what the goals are measured on, is spawn -> the whole day servable:
every symbol's trades generated and the time index the WebSocket stream needs built (the server
builds them in the background; `GET /admin/info` returns once they are). Listening time, spawn ->
first `GET /health` answered, is reported beside it: REST answers from then on, but a symbol's day
is generated on its first request, so it says when the socket is bound, not when the day is there.
RSS is read after paging one symbol's whole day over KIS REST and streaming 40 subscriptions over
the WebSocket for a while at 60x. Also timed: `sim day` for 40 symbols.

    .venv/bin/python benchmarks/sim_exchange.py [--symbols 2700] [--heavy-activity 10]
                                               # last line: a JSON object

`--served-days N` measures memory over many days instead (goal: 20 served days of 2,700 symbols
under 1.5 GiB peak RSS): one exchange process pinned after the close of 2026-11-20 is asked, as a
backfill would, for every symbol's minute chart on each of the N trading days up to it (oldest
first, 8 requests in flight), then for the first day again; the day cache (`--day-cache`, default
8) evicts the least recently used days. Reported: peak RSS (VmHWM) after each day and at the end,
the days held and generated, and whether the evicted first day came back identical.

    .venv/bin/python benchmarks/sim_exchange.py --served-days 20 [--symbols 2700] [--day-cache 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "stock_pipelines_tests" / "sim"))

import kis  # noqa: E402  (the tests' plain KIS client)
from stock_pipelines_tests.sim.served_days import serve_days  # noqa: E402

DATE = "2026-11-20"


def measure(symbols: int, activity: float = 1.0) -> dict[str, float]:
    command = [sys.executable, "-m", "stock_pipelines.cli", "sim", "exchange", "--port", "0", "--date", DATE,
               "--symbols", str(symbols), "--activity", str(activity), "--speed", "60", "--start", "08:59:50"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = json.loads(process.stdout.readline())["url"]
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/health").raise_for_status()
            listening_s = time.perf_counter() - started
            client.get("/admin/info").raise_for_status()  # returns once every symbol's day and the index are built
            ready_s = time.perf_counter() - started
            token = kis.token(client).json()["access_token"]
            client.post("/admin/clock", json={"at": f"{DATE}T15:40:00+09:00", "pinned": True})
            rows, calls = kis.page_back_today(client, token, "005930")
            client.post("/admin/clock", json={"at": f"{DATE}T09:30:00+09:00", "pinned": False, "speed": 60})
            approval = kis.approval(client)
            codes = client.get("/admin/info").json()["symbols"][:40]
            trades = asyncio.run(_stream(url, approval, codes, seconds=3.0))
            rss = psutil.Process(process.pid).memory_info().rss
        return {"listening_s": listening_s, "ready_s": ready_s, "rss_mib": rss / 2**20, "bars": len(rows),
                "rest_calls": calls, "ws_trades_3s": trades}
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _stream(url: str, approval: str, codes: list[str], seconds: float) -> int:
    ws_url = "ws" + url.removeprefix("http") + "/tryitout/H0STCNT0"
    count = 0
    async with websockets.connect(ws_url, max_queue=None) as ws:
        for code in codes:
            await ws.send(kis.subscribe(approval, code))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            if message[0] == "0":
                count += int(message.split("|", 3)[2])
    return count


def time_sim_day(symbols: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stock_pipelines.cli", "sim", "day", "--date", DATE, "--out", out,
                        "--symbols", str(symbols), "--outage", "10:15-10:40", "--corrupt", "10"],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2_700, help="the full-market universe (default 2,700)")
    parser.add_argument("--heavy-activity", type=float, default=10.0,
                        help="also measure the full universe at this activity (0: skip)")
    parser.add_argument("--served-days", type=int, default=0, metavar="N",
                        help="measure memory over N served days instead (see the module doc)")
    parser.add_argument("--day-cache", type=int, default=8, help="with --served-days: days held (default 8)")
    args = parser.parse_args()
    if args.served_days:
        result = serve_days(args.served_days, args.symbols, args.day_cache)
        print(f"{result['days']} days x {result['symbols']:,} symbols, day cache {result['day_cache']}: "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB in {result['seconds']} s; held {result['days_held']}, "
              f"generated {result['days_generated']}, evicted day identical: {result['first_day_identical']}")
        print(json.dumps({**result, "memory_goal_met": result["peak_rss_mib"] < 1536}))
        return
    measure(40)  # warm the calendar cache and the OS file cache; not reported
    baseline = measure(40)
    full = measure(args.symbols)
    heavy = measure(args.symbols, activity=args.heavy_activity) if args.heavy_activity > 0 else None
    sim_day_s = time_sim_day(40)
    print(f"40 symbols:    ready {baseline['ready_s']:.2f} s (listening {baseline['listening_s']:.2f} s), "
          f"RSS {baseline['rss_mib']:.0f} MiB, {baseline['rest_calls']} calls for {baseline['bars']} bars, "
          f"{baseline['ws_trades_3s']} ticks in 3 s")
    print(f"{args.symbols:,} symbols: ready {full['ready_s']:.2f} s ({full['ready_s'] / baseline['ready_s']:.2f}x "
          f"baseline; listening {full['listening_s']:.2f} s), RSS {full['rss_mib']:.0f} MiB "
          f"({full['rss_mib'] / baseline['rss_mib']:.2f}x baseline), {full['ws_trades_3s']} ticks in 3 s")
    if heavy:
        print(f"{args.symbols:,} symbols x{args.heavy_activity:g} activity: ready {heavy['ready_s']:.2f} s "
              f"(listening {heavy['listening_s']:.2f} s), RSS {heavy['rss_mib']:.0f} MiB")
    print(f"sim day, 40 symbols (process, incl. imports): {sim_day_s:.2f} s")
    result = {
        "symbols": args.symbols,
        "ready_s_40": round(baseline["ready_s"], 3),
        "ready_s_full": round(full["ready_s"], 3),
        "ready_ratio": round(full["ready_s"] / baseline["ready_s"], 3),
        "listening_s_40": round(baseline["listening_s"], 3),
        "listening_s_full": round(full["listening_s"], 3),
        "rss_mib_40": round(baseline["rss_mib"], 1),
        "rss_mib_full": round(full["rss_mib"], 1),
        "rss_ratio": round(full["rss_mib"] / baseline["rss_mib"], 3),
        "ready_goal_met": full["ready_s"] < 2.0,
        "memory_goal_met": full["rss_mib"] < 1024,
        "ready_s_heavy": round(heavy["ready_s"], 3) if heavy else None,
        "listening_s_heavy": round(heavy["listening_s"], 3) if heavy else None,
        "rss_mib_heavy": round(heavy["rss_mib"], 1) if heavy else None,
        "sim_day_40_s": round(sim_day_s, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
