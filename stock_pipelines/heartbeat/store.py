"""Heartbeats and lifecycle events in Redis.

Keys (all under the project prefix, see `redis_conn.key`):

- ``hb:<collector>:latest``           hash, the latest beat (TTL `ttl`)
- ``hb:<collector>:up:<YYYYMMDD>``    list of up-intervals of one Asia/Seoul day, each
                                       ``"<start_us> <end_us> <tolerance_us>[ x]"``, extended
                                       atomically by each beat (TTL `ttl`); `` x`` marks an
                                       interval closed by a DOWN event
- ``hb:collectors``                   sorted set, collector -> time of its last beat (epoch s)
- ``hb:events``                       stream of UP / DOWN / STALLED events (approximately capped)

Lifecycle events go to a stream, not Pub/Sub: a reader that was away resumes from the last id
it saw (`read_events(after=...)`) and misses nothing still in the stream.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import redis

from stock_pipelines.archive.layout import check_collector_id
from stock_pipelines.heartbeat.model import (
    DEFAULT_INTERVAL_S,
    Clock,
    EventRecord,
    Heartbeat,
    LifecycleEvent,
    UpInterval,
    from_us,
    merge_intervals,
    to_us,
    utc_now,
)
from stock_pipelines.market import SEOUL
from stock_pipelines.redis_conn import key

DEFAULT_TTL = timedelta(days=14)
EVENTS_MAXLEN = 100_000

# KEYS: latest hash, up-interval list, collectors zset.
# ARGV: at_us, tolerance_us, ttl_s, collector, close (0/1), at_s, then hash field/value pairs.
# Times stay strings when written back: Lua numbers are doubles and tostring() would print
# epoch microseconds in exponent notation.
_BEAT_SCRIPT = """
local t = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local closing = ARGV[5] == '1'
local last = redis.call('LINDEX', KEYS[2], -1)
local action = 'push'
if last then
  local s_str, e_str, tol_str, mark = string.match(last, '^(%d+) (%d+) (%d+)(.*)$')
  local s, e = tonumber(s_str), tonumber(e_str)
  if mark == '' and t >= e and t - e <= tol then
    redis.call('LSET', KEYS[2], -1, s_str .. ' ' .. ARGV[1] .. ' ' .. ARGV[2] .. (closing and ' x' or ''))
    action = 'extend'
  elseif t >= s and t <= e then
    if closing and mark == '' then redis.call('LSET', KEYS[2], -1, last .. ' x') end
    action = 'inside'
  end
end
if action == 'push' then
  redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[1] .. ' ' .. ARGV[2] .. (closing and ' x' or ''))
end
redis.call('EXPIRE', KEYS[2], ttl)
if #ARGV > 6 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 7))
  redis.call('EXPIRE', KEYS[1], ttl)
end
redis.call('ZADD', KEYS[3], 'GT', ARGV[6], ARGV[4])
return action
"""


class HeartbeatStore:
    def __init__(self, redis_client: redis.Redis, clock: Clock = utc_now, ttl: timedelta = DEFAULT_TTL):
        self.redis = redis_client
        self.clock = clock
        self.ttl = ttl
        self._beat = redis_client.register_script(_BEAT_SCRIPT)

    # -- writing -----------------------------------------------------------------------------

    def beat(self, hb: Heartbeat) -> str:
        """Record one beat: latest state and the day's up-intervals, atomically.

        Returns what happened to the history: ``extend``, ``push`` (a new interval) or ``inside``.
        """
        fields = [item for pair in hb.to_fields().items() for item in pair]
        return self._run(hb.collector, to_us(hb.at), hb.merge_tolerance, closing=False, fields=fields)

    def event(
        self, collector: str, event: LifecycleEvent | str, at=None, detail: dict | None = None,
        tolerance: timedelta = timedelta(seconds=10),
    ) -> str:
        """Append a lifecycle event to the stream; return its id. DOWN also closes the up-interval."""
        event = LifecycleEvent(event)
        check_collector_id(collector)
        at = at or self.clock()
        at_us = to_us(at)
        if event is LifecycleEvent.DOWN:
            self._run(collector, at_us, tolerance, closing=True, fields=[])
        return self.redis.xadd(
            key("hb", "events"),
            {"event": event.value, "collector": collector, "at_us": str(at_us),
             "detail": json.dumps(detail or {}, separators=(",", ":"))},
            maxlen=EVENTS_MAXLEN,
            approximate=True,
        )

    def _run(self, collector: str, at_us: int, tolerance: timedelta, closing: bool, fields: list[str]) -> str:
        day = from_us(at_us).astimezone(SEOUL).date()
        return self._beat(
            keys=[key("hb", collector, "latest"), self._up_key(collector, day), key("hb", "collectors")],
            args=[str(at_us), str(int(tolerance / timedelta(microseconds=1))), str(int(self.ttl.total_seconds())),
                  collector, "1" if closing else "0", repr(at_us / 1e6), *fields],
        )

    # -- reading -----------------------------------------------------------------------------

    def latest(self, collector: str) -> Heartbeat | None:
        fields = self.redis.hgetall(key("hb", collector, "latest"))
        return Heartbeat.from_fields(fields) if fields else None

    def collectors(self) -> dict[str, float]:
        """Every collector that beat within the TTL -> seconds since its last beat (by `clock`)."""
        now_s = to_us(self.clock()) / 1e6
        cutoff = now_s - self.ttl.total_seconds()
        self.redis.zremrangebyscore(key("hb", "collectors"), "-inf", cutoff)
        return {name: max(0.0, now_s - score) for name, score in
                self.redis.zrange(key("hb", "collectors"), 0, -1, withscores=True)}

    def stale_collectors(self, threshold_intervals: float = 3.0) -> dict[str, float]:
        """Collectors whose last beat is older than `threshold_intervals` of their own interval
        -> seconds since that beat. A collector whose latest hash expired counts as stale too."""
        stale = {}
        for name, age in self.collectors().items():
            latest = self.latest(name)
            interval = latest.interval_s if latest is not None else DEFAULT_INTERVAL_S
            if latest is None or age > threshold_intervals * interval:
                stale[name] = age
        return stale

    def up_intervals(self, collector: str, day: date) -> list[UpInterval]:
        """Up-intervals of one Asia/Seoul day, sorted and merged; [] when Redis knows nothing."""
        entries = []
        for entry in self.redis.lrange(self._up_key(collector, day), 0, -1):
            start, end, tolerance, *mark = entry.split()
            entries.append((int(start), int(end), int(tolerance), bool(mark)))
        # A late beat (two writers, a slow network) lands as its own entry at the end of the
        # list; merging by each entry's tolerance gives what the beats in time order would give.
        merged: list[list] = []
        for start, end, tolerance, closed in sorted(entries):
            last = merged[-1] if merged else None
            if last is not None and start <= last[1] + (0 if last[3] else last[2]):
                if end >= last[1]:  # the later end decides the tolerance and whether it is closed
                    last[1], last[2], last[3] = end, tolerance, closed
            else:
                merged.append([start, end, tolerance, closed])
        return merge_intervals(UpInterval(from_us(s), from_us(e)) for s, e, _, _ in merged)

    def read_events(
        self, after: str = "0-0", count: int = 1000, block_ms: int | None = None
    ) -> tuple[list[EventRecord], str]:
        """Events after the stream id `after`, and the cursor to pass next time.

        A cursor older than the stream's trimmed tail simply resumes at the oldest kept event.
        """
        reply = self.redis.xread({key("hb", "events"): after}, count=count, block=block_ms)
        records: list[EventRecord] = []
        cursor = after
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                records.append(EventRecord(
                    id=entry_id,
                    event=LifecycleEvent(fields["event"]),
                    collector=fields["collector"],
                    at=from_us(int(fields["at_us"])),
                    detail=json.loads(fields.get("detail") or "{}"),
                ))
                cursor = entry_id
        return records, cursor

    @staticmethod
    def _up_key(collector: str, day: date) -> str:
        return key("hb", collector, "up", f"{day:%Y%m%d}")
