"""The automation's state as Prometheus series, for `stock-pipelines metrics serve`
(docs/operations.md, "Metrics"): what Redis holds (breakers, dormant mode, kill switches, the
collectors' last heartbeats, queued retries), recovery runs by outcome (from the Dagster instance,
through a function the command passes in) and the newest day's quality verdict (the quality
report's summary.json in the lake).

Read at every scrape, never cached: a scrape shows the state as it is. If Redis cannot be read,
`stock_pipelines_redis_up` is 0, the Redis series are left out and /health names the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from stock_pipelines.heartbeat.store import HeartbeatStore
from stock_pipelines.market import SEOUL, CalendarRangeError, krx_calendar
from stock_pipelines.ops.governance import BROKERS, RecoveryGovernance
from stock_pipelines.ops.status import collector_states
from stock_pipelines.quality.store import read_summary
from stock_pipelines.redis_conn import key
from stock_pipelines.resilience.breaker import State
from stock_pipelines.resilience.flags import FLAG_NAMES, FeatureFlags

# A day must be certified this long after its close: 16:30 on a regular day, 17:30 on a CSAT day
# (close 16:30). Exported as a timestamp so the alert rule needs no hour of its own.
CERTIFY_WITHIN = timedelta(hours=1)
DAYS_LOOKED_BACK = 10  # trading days searched for the newest quality report
HEARTBEAT_STATES = ("ok", "starting", "stalled", "stale", "stopped", "unknown")

RunCounts = Callable[[], dict[str, int]]  # recovery runs by outcome (Dagster run status)

SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "stock_pipelines_redis_up": ("1 when Redis answered this scrape", ()),
    "stock_pipelines_breaker_state": ("1 for each broker breaker's current state", ("broker", "state")),
    "stock_pipelines_breaker_consecutive_failures": ("Failures in a row the breaker counted", ("broker",)),
    "stock_pipelines_dormant": ("1 while automatic recovery is dormant (a person must resume)", ()),
    "stock_pipelines_failed_recoveries_consecutive": ("Recovery runs failed in a row", ()),
    "stock_pipelines_kill_switch_enabled": ("1 while the feature is on; 0 when a kill switch turned it off",
                                            ("flag", "source")),
    "stock_pipelines_recovery_retries_queued": ("Recovery retries waiting for their time or a resume", ()),
    "stock_pipelines_heartbeat_age_seconds": ("Seconds since the collector's last heartbeat in Redis",
                                              ("collector",)),
    "stock_pipelines_heartbeat_state": ("1 for the state its last heartbeat shows", ("collector", "state")),
    "stock_pipelines_recovery_runs": ("Recovery runs in the Dagster instance by outcome", ("status",)),
    "stock_pipelines_trading_day": ("1 when today (Asia/Seoul) is a KRX trading day", ()),
    "stock_pipelines_day_certification_deadline_seconds": (
        "When today's quality report must be certified (epoch s): its close plus one hour", ()),
    "stock_pipelines_day_certified": ("1 when today's quality report is written and certified", ()),
    "stock_pipelines_last_day_timestamp_seconds": ("The newest reported day (Seoul midnight, epoch s)", ()),
    "stock_pipelines_last_day_completeness_ratio": ("Share of expected minute bars present on that day", ()),
    "stock_pipelines_last_day_certified": ("1 when that day's report is certified", ()),
}


def _gauge(name: str) -> GaugeMetricFamily:
    help_text, labels = SERIES[name]
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def _single(name: str, value: float) -> GaugeMetricFamily:
    family = _gauge(name)
    family.add_metric([], value)
    return family


class OperationsMetrics(PrometheusCollector):
    def __init__(
        self,
        client: redis.Redis,
        now: Callable[[], datetime],
        run_counts: RunCounts | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.client, self.now, self.run_counts, self.data_dir = client, now, run_counts, data_dir
        self._run_error = ""

    def describe(self) -> list[Metric]:
        return []  # registering must not reach Redis

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        try:
            families = list(self._redis_series(now)) if redis_problem(self.client) is None else None
        except (redis.RedisError, OSError):  # Redis went away during the scrape
            families = None
        yield _single("stock_pipelines_redis_up", float(families is not None))
        yield from families or []
        if self.run_counts is not None:
            counts = self._run_counts()
            if counts is not None:
                runs = _gauge("stock_pipelines_recovery_runs")
                for status, count in sorted(counts.items()):
                    runs.add_metric([status], count)
                yield runs
        yield from self._day_series(now)

    def problems(self) -> list[str]:
        """What /health reports: Redis unreachable, the Dagster instance unreadable."""
        found = [problem] if (problem := redis_problem(self.client)) else []
        if self.run_counts is not None and self._run_counts() is None:
            found.append(f"dagster instance unreadable: {self._run_error}")
        return found

    def _run_counts(self) -> dict[str, int] | None:
        assert self.run_counts is not None
        try:
            return self.run_counts()
        except Exception as error:  # noqa: BLE001 - run storage (SQLite, PostgreSQL) down or locked
            self._run_error = f"{type(error).__name__}: {error}"
            return None

    def _redis_series(self, now: datetime) -> Iterator[Metric]:
        governance = RecoveryGovernance(self.client, clock=lambda: now.timestamp())
        states, failures = _gauge("stock_pipelines_breaker_state"), _gauge(
            "stock_pipelines_breaker_consecutive_failures")
        for broker in BROKERS:
            snap = governance.breaker(broker).snapshot()
            for state in State:
                states.add_metric([broker, state.value], float(snap.state is state))
            failures.add_metric([broker], snap.consecutive_failures)
        yield states
        yield failures
        dormant = governance.dormant_state()
        yield _single("stock_pipelines_dormant", float(dormant.dormant))
        yield _single("stock_pipelines_failed_recoveries_consecutive", dormant.consecutive_failed_recoveries)
        switches = _gauge("stock_pipelines_kill_switch_enabled")
        flags = FeatureFlags(self.client)
        for name in FLAG_NAMES:
            flag = flags.state(name)
            switches.add_metric([name, flag.source], float(flag.enabled))
        yield switches
        yield _single("stock_pipelines_recovery_retries_queued", self.client.hlen(key("recovery", "retries")))
        ages, beat_states = _gauge("stock_pipelines_heartbeat_age_seconds"), _gauge(
            "stock_pipelines_heartbeat_state")
        for collector, state in collector_states(HeartbeatStore(self.client, clock=lambda: now), now).items():
            if state.get("age_s") is not None:
                ages.add_metric([collector], state["age_s"])
            for name in HEARTBEAT_STATES:
                beat_states.add_metric([collector, name], float(state["state"] == name))
        yield ages
        yield beat_states

    def _day_series(self, now: datetime) -> Iterator[Metric]:
        today = now.astimezone(SEOUL).date()
        try:
            session = krx_calendar().session(today)
        except CalendarRangeError:  # past the supported calendar: the pre-flight warns long before
            return
        yield _single("stock_pipelines_trading_day", float(session is not None))
        if session is not None:
            yield _single("stock_pipelines_day_certification_deadline_seconds",
                          (session.close + CERTIFY_WITHIN).timestamp())
            summary = read_summary(today, self.data_dir)
            yield _single("stock_pipelines_day_certified", float(bool(summary and summary["certified"])))
        newest = newest_report(today, self.data_dir)
        if newest is not None:
            day, summary = newest
            yield _single("stock_pipelines_last_day_timestamp_seconds",
                          datetime.combine(day, time(0), SEOUL).timestamp())
            yield _single("stock_pipelines_last_day_completeness_ratio", float(summary["completeness"]))
            yield _single("stock_pipelines_last_day_certified", float(bool(summary["certified"])))


def newest_report(today: date, data_dir: Path | None = None) -> tuple[date, dict] | None:
    """The newest trading day up to `today` with a quality report, and its summary."""
    calendar = krx_calendar()
    day: date | None = today
    for _ in range(DAYS_LOOKED_BACK + 1):
        if day is None:
            return None
        if calendar.is_trading_day(day) and (summary := read_summary(day, data_dir)) is not None:
            return day, summary
        try:
            day = calendar.previous_trading_day(day)
        except ValueError:  # before the calendar's supported range
            return None
    return None


def redis_problem(client: redis.Redis) -> str | None:
    """None when Redis answers; otherwise what went wrong, for /health."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return f"redis unreachable: {type(error).__name__}: {error}"
    return None
