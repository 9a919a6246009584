"""A process hammering the shared rate limiter: `python -m ... URL NAME LIMIT DURATION`.

Prints ``ready`` once connected, reads a wall-clock start time from stdin (so every worker
starts together however slowly the interpreters came up), acquires as fast as it can for
DURATION seconds, then prints one JSON object: grant times (Redis server clock) and the local
wall time right after each grant.
"""

import json
import sys
import time

import redis

from stock_pipelines.redis_conn import quick_retry
from stock_pipelines.resilience import SharedRateLimiter


def main() -> None:
    url, name, limit, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, retry=quick_retry())
    limiter = SharedRateLimiter(client, name, limit, expected_processes=4)
    client.ping()
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    grants, local = [], []
    while time.time() < start_at + duration:
        grant = limiter.acquire(timeout=5)
        local.append(time.time())
        grants.append(grant.at)
    print(json.dumps({"grants": grants, "local": local}))


if __name__ == "__main__":
    main()
