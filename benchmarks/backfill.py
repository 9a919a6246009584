"""Back-fill benchmark: broker calls against their lower bound, rate-limit utilization, and
rate-limit errors with several worker processes sharing one limiter through Redis.

    .venv/bin/python benchmarks/backfill.py [--symbols 100] [--rate 20] [--workers 4]

Against `sim exchange` (a subprocess, KIS protocol, rate limit R a second per app key) on a past
trading day, every symbol has lost the whole session (the worst day). The lower bound comes from
that outage, not from the plan: each symbol lost every bar slot of the session, and a past day's
page holds 120 bars, so it is ceil(slots / 120) calls a symbol (4 for a 381-slot session). The
plan is split over W worker processes, and run three times in the same script:
  - shared:        each worker's KisClient takes a slot from the Redis-shared SharedRateLimiter (R/s);
  - per-process R: each worker limits itself to R/s locally (W x R offered: what copying the
                   broker's limit into every process gives you);
  - per-process R/W: each worker limits itself to its share R/W locally (what a careful user
                   without a shared limiter would configure: no errors, but a worker that runs
                   out of work leaves its share unused).
Printed per run: calls, calls/s, utilization = calls/s / R, and the exchange's own count of
EGW00201 rejections. Then the trade tier, shared limiter only: every symbol lost the trades of
`--trade-window` on the exchange's day (KIS serves today's trades only, so the clients' "now" is
that evening), fetched 30 a call from inquire-time-itemconclusion; its lower bound comes from the
simulator's trades, sum over symbols of ceil(trades in the window / 30). The last line is a JSON
object of the shared run's figures, both baselines' calls, rate-limit errors and utilization,
and the trade tier's figures (`trades_*`). Targets: calls == lower bound (bars), trade calls
close to theirs (pages overlap at their boundary second), utilization for both tiers near
1 / (1.05 + a call's latency in seconds) (each call holds its limiter slot from its grant to its
reply, then for the 1.05 s window: `resilience.rate_limit`), 0 errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

DAY = date(2026, 11, 20)


def outage_lower_bound(symbols: int) -> int:
    """Every symbol lost the whole session: the fewest calls that return all its bar slots."""
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.recovery.plan import PAST_PAGE

    slots = len(krx_calendar().session(DAY).minute_bar_starts())
    return symbols * math.ceil(slots / PAST_PAGE)


def worker(symbols: list[str], local_rate: float | None, rate: int, workers: int, url: str, token_dir: str,
           redis_url: str, go: mp.Event, results: mp.Queue) -> None:
    """One back-fill process: the shared limiter at `rate` when `local_rate` is None, else its own
    limiter at `local_rate` calls a second."""
    from stock_pipelines.brokers.kis import KisClient, KisCredentials
    from stock_pipelines.gaps.model import Gap, GapKind
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.recovery.execute import execute_plan
    from stock_pipelines.recovery.plan import build_plan
    from stock_pipelines.redis_conn import redis_client
    from stock_pipelines.resilience.rate_limit import LocalRateLimiter, SharedRateLimiter

    session = krx_calendar().session(DAY)
    gaps = [Gap(GapKind.DOWNTIME, "bench", session.open, session.close, tuple(symbols), "benchmark")]
    plan = build_plan(gaps, DAY, today=DAY + timedelta(days=2), activity={})
    if local_rate is None:
        limiter = SharedRateLimiter(redis_client(redis_url), "bench", rate, expected_processes=workers)
    else:
        # `local_rate` a second with the shared limiter's 5% margin, in bursts of at most one second's worth
        burst = max(1, int(local_rate))
        local = LocalRateLimiter(burst, 1.05 * burst / local_rate)

        class Local:
            @contextlib.contextmanager
            def slot(self, timeout=None):
                while True:
                    granted, wait = local.try_acquire()
                    if granted:
                        break
                    time.sleep(wait)
                yield

        limiter = Local()
    client = KisClient(url, KisCredentials("bench-key", "bench-secret"), limiter, Path(token_dir),
                       today=lambda: session.close + timedelta(days=2))
    client.tokens.get(client._issue_token)  # the token before the clock starts: not a data call
    go.wait()
    started = time.monotonic()
    result = execute_plan(plan, client, DAY, workers=4)
    results.put({"calls": client.calls, "planned": sum(w.calls for w in plan), "started": started,
                 "ended": time.monotonic(), "unrecovered": len(result.unrecovered),
                 "retries": dict(client.retries)})


def trade_worker(symbols: list[str], rate: int, workers: int, url: str, token_dir: str, redis_url: str,
                 window: tuple[str, str], go: mp.Event, results: mp.Queue) -> None:
    """One trade back-fill process under the shared limiter: `window` of the day for each symbol."""
    from stock_pipelines.brokers.kis import KisClient, KisCredentials
    from stock_pipelines.brokers.trades import trade_history
    from stock_pipelines.market import SEOUL, krx_calendar
    from stock_pipelines.recovery.trades import TradeWindow
    from stock_pipelines.recovery.trades_run import fetch_trades
    from stock_pipelines.redis_conn import redis_client
    from stock_pipelines.resilience.rate_limit import SharedRateLimiter

    session = krx_calendar().session(DAY)
    start, end = (session.open.replace(hour=int(t[:2]), minute=int(t[3:5])).astimezone(SEOUL) for t in window)
    limiter = SharedRateLimiter(redis_client(redis_url), "bench-trades", rate, expected_processes=workers)
    client = KisClient(url, KisCredentials("bench-key", "bench-secret"), limiter, Path(token_dir),
                       today=lambda: session.close + timedelta(hours=1))
    client.tokens.get(client._issue_token)
    windows = [TradeWindow(symbol, start, end, None, 1, rank) for rank, symbol in enumerate(symbols)]
    go.wait()
    started = time.monotonic()
    result = fetch_trades(windows, trade_history(client), DAY, workers=4)
    results.put({"calls": client.calls, "trades": result.trades.height, "failed": len(result.failed),
                 "started": started, "ended": time.monotonic(), "retries": dict(client.retries)})


def run_trades(args, url: str, redis_url: str, token_dir: str) -> dict:
    from stock_pipelines.market import krx_calendar
    from stock_pipelines.sim.day import SimDay, universe

    codes = [code for code, _ in universe(args.symbols)]
    session = krx_calendar().session(DAY)
    start, end = (session.open.replace(hour=int(t[:2]), minute=int(t[3:5])) for t in args.trade_window.split("-"))
    sim = SimDay(DAY, seed=0, symbols=args.symbols)
    in_window = {code: int(((sim.trades(code).ts >= start.timestamp() * 1e6)
                            & (sim.trades(code).ts < end.timestamp() * 1e6)).sum()) for code in codes}
    bound = sum(math.ceil(n / 30) for n in in_window.values())
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    before = httpx.get(f"{url}/admin/stats").json()["rate_limited"]
    procs = [ctx.Process(target=trade_worker, args=(codes[i::args.workers], args.rate, args.workers, url, token_dir,
                                                    redis_url, tuple(args.trade_window.split("-")), go, results))
             for i in range(args.workers)]
    for p in procs:
        p.start()
    time.sleep(8)
    go.set()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    calls = sum(o["calls"] for o in outcomes)
    elapsed = max(o["ended"] for o in outcomes) - min(o["started"] for o in outcomes)
    return {
        "trades_missing": sum(in_window.values()),
        "trades_recovered": sum(o["trades"] for o in outcomes),
        "trades_calls": calls,
        "trades_lower_bound": bound,
        "trades_calls_vs_lower_bound": round(calls / bound, 3) if bound else None,
        "trades_utilization": round(calls / elapsed / args.rate, 3),
        "trades_rate_limit_errors": httpx.get(f"{url}/admin/stats").json()["rate_limited"] - before,
        "trades_failed_symbols": sum(o["failed"] for o in outcomes),
    }


def run(local_rate: float | None, args, url: str, redis_url: str, token_dir: str) -> dict:
    from stock_pipelines.sim.day import universe

    codes = [code for code, _ in universe(args.symbols)]
    chunks = [codes[i::args.workers] for i in range(args.workers)]
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    before = httpx.get(f"{url}/admin/stats").json()["rate_limited"]
    procs = [ctx.Process(target=worker, args=(c, local_rate, args.rate, args.workers, url, token_dir, redis_url,
                                              go, results)) for c in chunks]
    for p in procs:
        p.start()
    time.sleep(8)  # imports and token warm-up in every worker before the common start
    go.set()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = httpx.get(f"{url}/admin/stats").json()["rate_limited"] - before
    calls = sum(o["calls"] for o in outcomes)
    elapsed = max(o["ended"] for o in outcomes) - min(o["started"] for o in outcomes)
    return {
        "calls": calls,
        "planned": sum(o["planned"] for o in outcomes),
        "lower_bound": outage_lower_bound(args.symbols),
        "offered_per_s": round(args.rate if local_rate is None else local_rate * args.workers, 2),
        "elapsed_s": round(elapsed, 2),
        "calls_per_s": round(calls / elapsed, 2),
        "utilization": round(calls / elapsed / args.rate, 3),
        "rate_limit_errors": errors,
        "unrecovered_windows": sum(o["unrecovered"] for o in outcomes),
        "retries": {k: sum(o["retries"].get(k, 0) for o in outcomes) for k in {k for o in outcomes for k in o["retries"]}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trade-window", default="10:00-10:30", help="HH:MM-HH:MM every symbol lost the trades of")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STOCK_PIPELINES_DATA_DIR"] = tmp
        os.environ.pop("REDIS_URL", None)
        from stock_pipelines.redis_conn import embedded_redis_url, stop_embedded_redis
        from stock_pipelines.sim.runner import run_exchange_process

        redis_url = embedded_redis_url()
        exchange_args = ["--date", DAY.isoformat(), "--symbols", str(args.symbols), "--rate-limit", str(args.rate),
                         "--pin", "--start", "16:30"]
        try:
            with run_exchange_process(exchange_args) as url:
                tokens = str(Path(tmp) / "tokens")
                shared = run(None, args, str(url), redis_url, tokens)
                print("shared limiter:    ", json.dumps(shared), flush=True)
                full = run(float(args.rate), args, str(url), redis_url, tokens)
                print("per-process R/s:   ", json.dumps(full), flush=True)
                share = run(args.rate / args.workers, args, str(url), redis_url, tokens)
                print("per-process R/W/s: ", json.dumps(share), flush=True)
                trades = run_trades(args, str(url), redis_url, tokens)
                print("trade tier:        ", json.dumps(trades), flush=True)
        finally:
            stop_embedded_redis()
    figures = {**shared, "rate": args.rate, "workers": args.workers,
               "calls_vs_lower_bound": round(shared["calls"] / shared["lower_bound"], 3)}
    for name, baseline in (("baseline_full_rate", full), ("baseline_rate_share", share)):
        figures.update({f"{name}_{k}": baseline[k] for k in ("calls", "rate_limit_errors", "utilization", "elapsed_s")})
    figures.update(trades)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
