"""A process calling the (simulated) KIS broker through the project's own client and shared rate
limiter: `python -m ... REDIS_URL TOKEN_DIR DAY SYMBOL DURATION`, the broker from the environment
(KIS_BASE_URL, KIS_APP_KEY, KIS_APP_SECRET, KIS_RATE_LIMIT_PER_S, STOCK_PIPELINES_BROKER_PROCESSES).

stdin drives it:
- ``register``: one call (through Redis while it answers); prints the processes Redis counted;
- a wall-clock start time: from then on, calls as fast as the limiter lets it for DURATION
  seconds, then prints one JSON object: the wall time each HTTP request left (an httpx hook),
  the requests the client counted, and the limiter's fallback state.

WORKER_THREADS (default 1) threads call at once; SEND_DELAY_MAX_S (default 0): half the requests,
at random, leave that many seconds after their limiter grant, the others at once (a loaded
machine's scheduling at its worst: a descheduled thread beside running ones).
"""

import json
import os
import random
import sys
import threading
import time
from datetime import date
from pathlib import Path

import redis

from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.recovery.sources import BrokerSettings, build_source, credentials_from
from stock_pipelines.redis_conn import quick_retry


def main() -> None:
    url, token_dir, day, symbol, duration = sys.argv[1:6]
    day, duration = date.fromisoformat(day), float(duration)
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1,
                                  retry=quick_retry())
    settings = BrokerSettings.from_env(os.environ)  # a worker process: its environment is its config
    source = build_source(settings, credentials_from(settings.broker, os.environ), client, Path(token_dir))
    limiter = source.limiter
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "register":
            source.day_volume(symbol, day)
            print(json.dumps({"registered": limiter.processes_registered}), flush=True)
            continue
        start_at = float(line)
        break
    else:
        return
    time.sleep(max(0.0, start_at - time.time()))
    calls_before, sent, errors = source.calls, [], []
    delay = float(os.environ.get("SEND_DELAY_MAX_S", "0"))
    if delay:
        rng = random.Random()
        source.http.event_hooks["request"].append(lambda request: time.sleep(rng.choice((0.0, delay))))
    source.http.event_hooks["request"].append(lambda request: sent.append(time.time()))

    def call_until_the_end() -> None:
        while time.time() < start_at + duration:
            try:
                source.day_volume(symbol, day)
            except BrokerError as error:
                errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=call_until_the_end) for _ in range(int(os.environ.get("WORKER_THREADS", "1")))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({
        "sent": sent,
        "requests": source.calls - calls_before,
        "errors": errors,
        "in_fallback": limiter.in_fallback,
        "fallback_grants": limiter.fallback_grants,
        "share": limiter.local.limit,
    }), flush=True)


if __name__ == "__main__":
    main()
