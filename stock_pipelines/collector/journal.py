"""The collector's own record: its system events (archive system stream, log, and a list kept for
tests and the demo summary), and Redis writes that may fail without stopping the collector."""

from __future__ import annotations

import json
import logging

import redis

from stock_pipelines.archive.writer import ArchiveWriter

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, collector_id: str, writer: ArchiveWriter) -> None:
        self.collector_id = collector_id
        self.writer = writer
        self.events: list[dict] = []
        self._redis_failing = False

    def event(self, event: str, detail: dict) -> None:
        self.events.append({"event": event, **detail})
        self.writer.write_system(event, detail)
        log.info("%s %s %s", self.collector_id, event, json.dumps(detail, default=str)[:300])

    def redis_call(self, function, *args, **kwargs) -> None:
        """Call `function`; a Redis error is logged once a failing spell and otherwise ignored."""
        try:
            function(*args, **kwargs)
        except redis.RedisError as error:
            if not self._redis_failing:
                log.warning("collector %s: Redis call failed (continuing, the archive keeps the record): %s",
                            self.collector_id, error)
            self._redis_failing = True
        else:
            self._redis_failing = False
