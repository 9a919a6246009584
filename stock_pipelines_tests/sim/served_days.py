"""Many served days through one `sim exchange` process, as a backfill asks for them: every symbol's
minute chart on each of N trading days, oldest first, then the first day again (evicted by then
when N exceeds the day cache). Shared by `test_served_days.py` (a few days, a few symbols) and
`benchmarks/sim_exchange.py --served-days 20` (2,700 symbols)."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path

import httpx

from stock_pipelines.sim.day import universe
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines.sim.sessions import sim_calendar

from . import kis

CONCURRENCY = 8


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: Linux only")


def _chart_params(code: str, day: date) -> dict[str, str]:
    # The first page of a symbol's day makes the exchange generate (and keep) the whole symbol-day;
    # further pages only slice it again, so one short page a symbol-day costs the memory of a
    # backfill at a fraction of the calls.
    return {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code, "FID_INPUT_HOUR_1": "091000",
            "FID_INPUT_DATE_1": f"{day:%Y%m%d}", "FID_PW_DATA_INCU_YN": "N", "FID_FAKE_TICK_INCU_YN": ""}


async def _charts(url: str, token: str, requests: list[tuple[str, date]], retried: list) -> list[dict]:
    limit = asyncio.Semaphore(CONCURRENCY)
    headers = kis.headers(token, "FHKST03010230")
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        async def one(code: str, day: date) -> dict:
            async with limit:
                for attempt in range(3):  # a keep-alive connection the server closed: as a client would, retry
                    try:
                        reply = await client.get(kis.DAILYCHART, params=_chart_params(code, day))
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                        retried.append((code, day))
                body = reply.json()
                if body.get("rt_cd") != "0":
                    raise RuntimeError(f"{code} {day}: {reply.text[:200]}")
                return body

        return await asyncio.gather(*(one(code, day) for code, day in requests))


def serve_days(days: int, symbols: int, day_cache: int, last: date = date(2026, 11, 20)) -> dict[str, object]:
    """Ask for every symbol's chart on `days` trading days ending at `last`; what the exchange held,
    generated, its peak RSS, and whether the first day came back identical after eviction."""
    calendar = sim_calendar()
    served = calendar.trading_days(date(last.year - 1, 1, 1), last)[-days:]
    codes = [code for code, _ in universe(symbols)]
    args = ["--date", last.isoformat(), "--symbols", str(symbols), "--start", "16:00", "--pin",
            "--day-cache", str(day_cache), "--rate-limit", "100000"]
    started = time.perf_counter()
    with run_exchange_process(args) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            token = kis.token(client).json()["access_token"]
        retried: list[tuple[str, date]] = []
        first_before = asyncio.run(_charts(url, token, [(codes[0], served[0])], retried))[0]
        per_day_rss = []
        for day in served:
            asyncio.run(_charts(url, token, [(code, day) for code in codes], retried))
            per_day_rss.append(round(peak_rss_mib(url.pid), 1))
        first_after = asyncio.run(_charts(url, token, [(codes[0], served[0])], retried))[0]
        stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
        peak = peak_rss_mib(url.pid)
    return {
        "days": days, "symbols": symbols, "day_cache": day_cache, "requests": days * len(codes) + 2,
        "served": [d.isoformat() for d in served],
        "days_held": stats["days_held"], "days_generated": stats["days_generated"],
        "first_day_identical": first_before == first_after and bool(first_before["output2"]),
        "peak_rss_mib": round(peak, 1), "peak_rss_mib_after_each_day": per_day_rss,
        "seconds": round(time.perf_counter() - started, 1), "retried_requests": len(retried),
    }
