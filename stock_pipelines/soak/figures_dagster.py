"""What the soak's Dagster instance recorded: every run with its outcome, who launched it and for
which day; per day the broker calls and rate-limit retries the recoveries spent
(recovered_minute_bars' materialization metadata) and the quality report's verdict.

The only module of the figures that imports Dagster: the rest reads files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg

from stock_pipelines.market import SEOUL

SENSOR, SCHEDULE, PARTITION = "dagster/sensor_name", "dagster/schedule_name", "dagster/partition"
RATE_LIMITED = "BrokerRateLimited"  # the retry class the broker clients count (brokers/transport.py)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    job: str
    status: str  # SUCCESS, FAILURE, CANCELED, STARTED...
    partition: str | None
    launched_by: str  # "sensor <name>", "schedule <name>" or "a person"
    created_wall: float
    ended_wall: float | None


@dataclass
class DayRecords:
    recovery_calls: int = 0  # every recovered_minute_bars materialization of the day, summed
    rate_limited: int = 0
    retries: int = 0  # every retried call of the recoveries (rate limits, 5xx, timeouts), in recovery_calls
    recoveries: int = 0
    certified: bool | None = None  # the latest quality_report materialization's verdict
    # when each fetch that began and ended on the day itself began (its calls used today's page)
    same_day_fetches: set[datetime] = field(default_factory=set)


@dataclass
class InstanceFigures:
    runs: list[RunRow] = field(default_factory=list)
    days: dict[str, DayRecords] = field(default_factory=dict)
    problem: str = ""

    def outcomes(self) -> Counter:
        return Counter(run.status for run in self.runs)


def _value(metadata: dict, name: str, default=None):
    entry = metadata.get(name)
    return default if entry is None else getattr(entry, "value", entry)


def _launcher(tags: dict) -> str:
    if SENSOR in tags:
        return f"sensor {tags[SENSOR]}"
    if SCHEDULE in tags:
        return f"schedule {tags[SCHEDULE]}"
    return "a person"


def _runs(instance: dg.DagsterInstance, since_wall: float) -> list[RunRow]:
    rows = []
    for record in instance.get_run_records(ascending=True):
        created = record.create_timestamp.timestamp()
        if created < since_wall:
            continue
        run = record.dagster_run
        rows.append(RunRow(
            run.run_id, run.job_name, run.status.value, run.tags.get(PARTITION), _launcher(run.tags),
            created, record.end_time,
        ))
    return rows


def _materializations(instance: dg.DagsterInstance, asset: str, day: str) -> list:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=1000
    ).records
    return [r.asset_materialization for r in records if r.asset_materialization is not None]


def _seoul_day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(SEOUL).date().isoformat()


def _day(instance: dg.DagsterInstance, day: str) -> DayRecords:
    found = DayRecords()
    for materialization in _materializations(instance, "recovered_minute_bars", day):
        metadata = materialization.metadata
        found.recoveries += 1
        found.recovery_calls += int(_value(metadata, "calls", 0) or 0)
        retries = _value(metadata, "retries", {}) or {}
        found.rate_limited += int(retries.get(RATE_LIMITED, 0))
        found.retries += sum(int(n) for n in retries.values())
        started, ended = _value(metadata, "fetch_started"), _value(metadata, "fetch_ended")
        if started and ended and _seoul_day(started) == _seoul_day(ended) == day:
            found.same_day_fetches.add(datetime.fromisoformat(started))
    reports = _materializations(instance, "quality_report", day)  # newest first
    if reports:
        verdict = _value(reports[0].metadata, "certified")
        found.certified = None if verdict is None else bool(verdict)
    return found


def read_instance(dagster_home: Path, days: list[str], since_wall: float = 0.0) -> InstanceFigures:
    """The runs created since `since_wall` and each day's records; an unreadable instance is a
    problem named in the figures, not an exception."""
    if not (dagster_home / "dagster.yaml").is_file() and not dagster_home.is_dir():
        return InstanceFigures(problem=f"no Dagster instance at {dagster_home}")
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            return InstanceFigures(
                runs=_runs(instance, since_wall), days={day: _day(instance, day) for day in days}
            )
    except Exception as error:  # noqa: BLE001 - the figures report what they could not read
        return InstanceFigures(problem=f"the Dagster instance at {dagster_home} is unreadable: {error}")
