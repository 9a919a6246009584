"""The soak's CSAT day (2026-11-19, session 10:00-16:30) at 600x, with the heartbeats in a real
Redis: nothing was lost, so the recovery plan must ask the broker for nothing.

Two pieces of evidence went wrong there. The collectors beat every wall second, 100 exchange
minutes apart at the night speed, so the heartbeat sensor saw each one stale before the open and
fresh 35 minutes into the session, and asked for 10:00-10:35 although the history holds a beat
every 10 minutes from 09:53. And raw_ticks was read some wall seconds before gap_report judged
it, so each collector's archive ended 35-50 exchange minutes before its heartbeats: a silence to
"now" for every symbol, and one broker call each.
"""

from datetime import date, datetime, time, timedelta

import polars as pl

from stock_pipelines.heartbeat.model import Heartbeat
from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.recovery.chain import unproven_windows
from stock_pipelines.recovery.detect import collectors_of_day, detect_gaps, requested_gaps
from stock_pipelines.recovery.plan import build_plan

CSAT = date(2026, 11, 19)
SYMBOLS = ("005930", "207940")


def t(hhmmss: str) -> datetime:
    return datetime.combine(CSAT, time.fromisoformat(hhmmss), SEOUL)


def archive_as_read(until: datetime) -> pl.DataFrame:
    """Both symbols trading every 20 s from the open, chained (cum - qty = previous cum)."""
    rows = []
    for offset, symbol in enumerate(SYMBOLS):
        at, cum = t("10:00:05") + timedelta(seconds=offset), 0
        while at <= until:
            cum += 3
            rows.append(("kis-1", symbol, at, 3, cum))
            at += timedelta(seconds=20)
    return pl.DataFrame(rows, orient="row", schema={
        "collector": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "qty": pl.Int64,
        "cum": pl.Int64})


def test_a_day_with_nothing_lost_at_600x_costs_no_broker_call(redis_server):
    now = t("15:48:30")
    store = HeartbeatStore(redis_server.client(), clock=lambda: now)
    start = t("08:39:59")
    # pinned before the release: beats stamped 08:39:59, a 1 s interval (the clock's rate was 0)
    store.beat(Heartbeat("kis-1", "h", 1, start, start, SYMBOLS, interval_s=1.0))
    beat = t("09:53:34")
    while beat <= t("15:47:47"):
        # the last beat names a trade archived after raw_ticks was read
        last_trade = t("15:47:40") if beat + timedelta(minutes=10) > t("15:47:47") else beat
        store.beat(Heartbeat("kis-1", "h", 1, start, beat, SYMBOLS, last_trade_at=last_trade, interval_s=600.0))
        beat += timedelta(minutes=10)
    ticks = archive_as_read(until=t("14:59:30"))

    collectors = collectors_of_day(CSAT, ticks, store, None)
    gaps = detect_gaps(CSAT, ticks, collectors, now=now)
    gaps += requested_gaps([f"{t('10:00:00').isoformat()}/{t('10:35:00').isoformat()}"],
                           "collector_heartbeat_sensor:kis-1", gaps, collectors)

    assert [(c.history_source, c.last_trade_at) for c in collectors] == [("redis", t("15:47:40"))]
    assert [(g.kind.value, g.start, g.end) for g in gaps] == []
    plan = build_plan(gaps, CSAT, today=CSAT, activity={}, unproven=unproven_windows(ticks, krx_calendar().session(CSAT)))
    assert plan == []
    # a past day's archive is final: read later, the same quiet tail is a silence
    past = detect_gaps(CSAT, ticks, collectors, now=None)
    assert [g.start for g in past if g.kind.value == "silence"] == [t("14:59:26")]
