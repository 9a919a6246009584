"""Where governance state (breakers, dormant mode) lives: Redis, or memory for unit tests.

`update(name, change)` is an atomic read-modify-write: in Redis an optimistic WATCH/MULTI
transaction, retried when another process changed the value in between, so two workers
recording failures at once both count. Values are JSON objects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Protocol

import redis

from stock_pipelines.redis_conn import key

Change = Callable[[dict | None], dict]


class StateStore(Protocol):
    def get(self, name: str) -> dict | None: ...

    def update(self, name: str, change: Change) -> dict: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> dict | None:
        raw = self._values.get(name)
        return None if raw is None else json.loads(raw)

    def update(self, name: str, change: Change) -> dict:
        with self._lock:
            new = change(self.get(name))
            self._values[name] = json.dumps(new)
            return new


class RedisStateStore:
    """JSON values under ``<prefix>:<namespace>:<name>``; no TTL: governance must survive restarts."""

    def __init__(self, client: redis.Redis, namespace: str = "governance") -> None:
        self.client, self.namespace = client, namespace

    def _key(self, name: str) -> str:
        return key(self.namespace, name)

    def get(self, name: str) -> dict | None:
        raw = self.client.get(self._key(name))
        return None if raw is None else json.loads(raw)

    def update(self, name: str, change: Change) -> dict:
        redis_key = self._key(name)
        result: dict = {}

        def transaction(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(redis_key)
            new = change(None if raw is None else json.loads(raw))
            pipe.multi()
            pipe.set(redis_key, json.dumps(new))
            result.clear()
            result.update(new)

        self.client.transaction(transaction, redis_key)
        return result
