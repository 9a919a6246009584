"""The collector's state in Redis, for `stock-pipelines collector status` and operators.

Keys (under the project prefix, `redis_conn.key`):
- ``collector:ids``               set of collector ids that ever reported
- ``collector:<id>:status``       hash: state, source (primary | secondary), broker of the active
                                  feed (kis | kiwoom), failover (primary | on_secondary), at_us,
                                  shards, connected, symbols, seq, disk_low, counters (JSON of the
                                  pipeline's stage counters), switches
- ``collector:<id>:switches``     stream of source switches (failover / failback), capped
The heartbeat itself stays in the heartbeat store (`hb:<id>:latest`); this is the collector's detail.
"""

from __future__ import annotations

import json

import redis

from stock_pipelines.redis_conn import key

SWITCHES_MAXLEN = 10_000
TTL_S = 14 * 86_400


def write_status(client: redis.Redis, collector: str, fields: dict[str, object]) -> None:
    flat = {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in fields.items()}
    pipe = client.pipeline(transaction=False)
    pipe.sadd(key("collector", "ids"), collector)
    pipe.hset(key("collector", collector, "status"), mapping=flat)
    pipe.expire(key("collector", collector, "status"), TTL_S)
    pipe.execute()


def record_switch(client: redis.Redis, collector: str, switch: dict[str, object]) -> None:
    client.xadd(key("collector", collector, "switches"),
                {k: str(v) for k, v in switch.items()}, maxlen=SWITCHES_MAXLEN, approximate=True)


def read_status(client: redis.Redis, collector: str | None = None) -> dict[str, dict[str, object]]:
    """collector id -> its status (JSON fields decoded) and its recorded switches."""
    ids = [collector] if collector else sorted(client.smembers(key("collector", "ids")))
    result: dict[str, dict[str, object]] = {}
    for name in ids:
        raw = client.hgetall(key("collector", name, "status"))
        if not raw:
            continue
        status: dict[str, object] = {}
        for field, value in raw.items():
            try:
                status[field] = json.loads(value)
            except ValueError:
                status[field] = value
        status["switch_log"] = [fields for _id, fields in client.xrange(key("collector", name, "switches"))]
        result[name] = status
    return result
