"""The simulated exchange an hour after a day's close, with its own Redis: what the end-of-day
tests run against (one app key a test: the simulator issues one token a key a minute)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from stock_pipelines.market import krx_calendar
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.conftest import RedisServer


@contextmanager
def exchange_after_close(
    redis_dir: Path, day: date, seed: int, symbols: int, keys: dict[str, str]
) -> Iterator[tuple[str, RedisServer]]:
    session = krx_calendar().session(day)
    redis = RedisServer(redis_dir)
    redis.start()
    config = ExchangeConfig(day=day, seed=seed, symbols=symbols, pinned=True,
                            start=session.close + timedelta(hours=1), credentials=keys)
    try:
        with run_exchange(config) as url:
            yield str(url), redis
    finally:
        redis.stop()
