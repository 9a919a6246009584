"""Simulated exchange: start time and memory with a full-market (2,700-symbol) day.

Goals (issue 3): `sim exchange` accepts requests in under 2 s and serves a 2,700-symbol day in
under 1 GiB. Baseline, measured in the same run: the default 40-symbol day.

For each universe size, the exchange runs as its own process (`stock-pipelines sim exchange`);
start time is spawn -> first `GET /health` answered (imports, calendar, socket bound: REST
answers from then on, generating a symbol's day on first use); "ready" is when the whole day's
time index, which the WebSocket stream needs, has been built in the background; RSS is read after paging one symbol's whole day over KIS REST and streaming 40
subscriptions over the WebSocket for a while at 60x. Also timed: `sim day` for 40 symbols.

    .venv/bin/python benchmarks/sim_exchange.py        # last line: a JSON object
"""

from __future__ import annotations

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

DATE = "2026-11-20"


def measure(symbols: int, activity: float = 1.0) -> dict[str, float]:
    command = [sys.executable, "-m", "stock_pipelines.cli", "sim", "exchange", "--port", "0", "--date", DATE,
               "--symbols", str(symbols), "--activity", str(activity), "--speed", "60", "--start", "08:59:50"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = json.loads(process.stdout.readline())["url"]
        with httpx.Client(base_url=url, timeout=30) as client:
            client.get("/health").raise_for_status()
            start_s = time.perf_counter() - started
            client.get("/admin/info").raise_for_status()  # waits for the whole day's index (the stream's)
            ready_s = time.perf_counter() - started
            token = kis.token(client).json()["access_token"]
            client.post("/admin/clock", json={"at": f"{DATE}T15:40:00+09:00", "pinned": True})
            rows, calls = kis.page_back_today(client, token, "005930")
            client.post("/admin/clock", json={"at": f"{DATE}T09:30:00+09:00", "pinned": False, "speed": 60})
            approval = kis.approval(client)
            codes = client.get("/admin/info").json()["symbols"][:40]
            trades = asyncio.run(_stream(url, approval, codes, seconds=3.0))
            rss = psutil.Process(process.pid).memory_info().rss
        return {"start_s": start_s, "ready_s": ready_s, "rss_mib": rss / 2**20, "bars": len(rows), "rest_calls": calls,
                "ws_trades_3s": trades}
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
    measure(40)  # warm the calendar cache and the OS file cache; not reported
    baseline = measure(40)
    full = measure(2_700)
    heavy = measure(2_700, activity=10.0)  # ~9M trades: a busy real market day, for information
    sim_day_s = time_sim_day(40)
    print(f"40 symbols:    start {baseline['start_s']:.2f} s, RSS {baseline['rss_mib']:.0f} MiB, "
          f"{baseline['rest_calls']} calls for {baseline['bars']} bars, {baseline['ws_trades_3s']} ticks in 3 s")
    print(f"2,700 symbols: start {full['start_s']:.2f} s ({full['start_s'] / baseline['start_s']:.2f}x baseline), "
          f"stream index ready {full['ready_s']:.2f} s, RSS {full['rss_mib']:.0f} MiB ({full['rss_mib'] / baseline['rss_mib']:.2f}x baseline), "
          f"{full['ws_trades_3s']} ticks in 3 s")
    print(f"2,700 symbols x10 activity (~9M trades): start {heavy['start_s']:.2f} s, "
          f"stream index ready {heavy['ready_s']:.2f} s, RSS {heavy['rss_mib']:.0f} MiB")
    print(f"sim day, 40 symbols (process, incl. imports): {sim_day_s:.2f} s")
    result = {
        "start_s_40": round(baseline["start_s"], 3),
        "start_s_2700": round(full["start_s"], 3),
        "start_ratio": round(full["start_s"] / baseline["start_s"], 3),
        "rss_mib_40": round(baseline["rss_mib"], 1),
        "rss_mib_2700": round(full["rss_mib"], 1),
        "rss_ratio": round(full["rss_mib"] / baseline["rss_mib"], 3),
        "start_goal_met": full["start_s"] < 2.0,
        "memory_goal_met": full["rss_mib"] < 1024,
        "ready_s_2700": round(full["ready_s"], 3),
        "start_s_2700_x10": round(heavy["start_s"], 3),
        "ready_s_2700_x10": round(heavy["ready_s"], 3),
        "rss_mib_2700_x10": round(heavy["rss_mib"], 1),
        "sim_day_40_s": round(sim_day_s, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
