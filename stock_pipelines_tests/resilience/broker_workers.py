"""Real processes calling the simulated KIS broker through the project's client and shared rate
limiter (`broker_worker`), driven from a test: start them, tell them all a line, collect their
results, and read the exchange's own counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


class BrokerWorkers:
    def __init__(self, workers: list[subprocess.Popen]) -> None:
        self.workers = workers

    def tell_all(self, line: str) -> list[str]:
        for worker in self.workers:
            worker.stdin.write(line + "\n")
            worker.stdin.flush()
        return [worker.stdout.readline().strip() for worker in self.workers] if line == "register" else []

    def results(self) -> list[dict]:
        results = []
        for worker in self.workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            results.append(json.loads(out))
        return results


@contextmanager
def broker_workers(
    count: int, url: str, redis_url: str, token_dir: Path, day: date, duration: float, env: dict[str, str]
) -> Iterator[BrokerWorkers]:
    """`count` workers on the exchange at `url` (KIS variables and the worker's own in `env`);
    each is ready when this yields, and killed on the way out if still running."""
    environ = os.environ | {"KIS_BASE_URL": url, "STOCK_PIPELINES_BROKER": "kis"} | env
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "stock_pipelines_tests.resilience.broker_worker", redis_url,
             str(token_dir), day.isoformat(), "005930", str(duration)],
            cwd=REPO, env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        yield BrokerWorkers(workers)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)


def exchange_stats(url: str) -> dict:
    return httpx.get(f"{url}/admin/stats", timeout=10).json()
