"""The soak's figures: a run directory measured against independent truth.

`measure(run_dir)` reads what the harness left (manifest.json, faults.jsonl, alerts.jsonl,
memory.json, calls.json), the lake and quality reports the pipeline wrote, the Dagster instance
and the retention log, and rebuilds each day's truth from the exchange's parameters. One row per
day, one per fault, a total, and one JSON line (`json_line()`, the command's last line).

`passed()` is the issue's bar: every day certified, no bar lost or wrong, recovery calls within
1.2x the true lower bound (first attempts: the retries a fault's errors cost are counted apart;
the bound is the fewest calls returning the missing symbol-minutes at the pages the
broker offered when they were fetched: see figures_truth; fewer calls than that is a miscount),
every incident exactly one alert and one resolution, and retention never deleted an uncertified
day. `reasons()` says what failed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from stock_pipelines.archive import retention_log
from stock_pipelines.quality.store import read_summary
from stock_pipelines.soak.figures_alerts import AlertFigures, open_in_redis, pair, read_alerts
from stock_pipelines.soak.figures_dagster import InstanceFigures, read_instance
from stock_pipelines.soak.figures_faults import FaultRow, time_faults
from stock_pipelines.soak.figures_render import render
from stock_pipelines.soak.figures_truth import TruthFigures, measure_day

CALLS_OVER_BOUND = 1.2
CREDENTIAL_ENDPOINTS = ("_token", "_approval")  # exchange calls that fetch no data


@dataclass
class DayRow:
    day: str
    certified: bool | None  # None: no quality report for the day
    truth: TruthFigures
    calls: int  # every call the day's recoveries made, retries included
    rate_limited: int
    recoveries: int
    retention: str  # the retention log's latest action on the day during the run, "" if none
    retries: int = 0  # of `calls`, the retried ones (a fault's 500s, rate limits, timeouts)
    problems: list[str] = field(default_factory=list)


@dataclass
class SoakFigures:
    manifest: dict
    days: list[DayRow]
    faults: list[FaultRow]
    alerts: AlertFigures
    instance: InstanceFigures
    retention: list[dict]  # the retention log's entries written during the run
    memory: dict[str, int]
    exchange_calls: int  # data calls the exchange counted (tokens excluded), all callers
    exchange_rate_limited: int
    problems: list[str] = field(default_factory=list)  # run-level: unreadable inputs, retention

    @property
    def calls(self) -> int:
        return sum(d.calls for d in self.days)

    @property
    def retries(self) -> int:
        return sum(d.retries for d in self.days)

    @property
    def first_attempts(self) -> int:
        """The calls the plan made: every call but the retries of a failed one."""
        return self.calls - self.retries

    @property
    def calls_lower_bound(self) -> int:
        return sum(d.truth.calls_lower_bound for d in self.days)

    @property
    def calls_same_day_bound(self) -> int:
        return sum(d.truth.calls_same_day_bound for d in self.days)

    @property
    def calls_any_day_bound(self) -> int:
        return sum(d.truth.calls_any_day_bound for d in self.days)

    def totals(self) -> dict:
        def total(name: str) -> int:
            return sum(getattr(d.truth, name) for d in self.days)

        outcomes = self.instance.outcomes()
        detect = [f.detect_s for f in self.faults if f.detect_s is not None]
        recover = [f.recover_s for f in self.faults if f.recover_s is not None]
        return {
            "days": len(self.days),
            "days_certified": sum(1 for d in self.days if d.certified),
            "bars_lost": total("bars_lost"),
            "calls": self.calls,
            "calls_lower_bound": self.calls_lower_bound,
            "incidents": len(self.alerts.incidents),
            "alerts": self.alerts.alerts,
            "resolutions": self.alerts.resolutions,
            "calls_retried": self.retries,
            "calls_same_day_bound": self.calls_same_day_bound,
            "calls_any_day_bound": self.calls_any_day_bound,
            "bars_expected": total("bars_expected"),
            "bars_wrong": total("bars_wrong") + total("bars_extra"),
            "trades_expected": total("trades_expected"),
            "trades_archived": total("trades_archived"),
            "missing_symbol_minutes": total("missing_symbol_minutes"),
            "exchange_calls": self.exchange_calls,
            "rate_limited": self.exchange_rate_limited,
            "recovery_rate_limited": sum(d.rate_limited for d in self.days),
            "notices": self.alerts.notices,
            "faults": len(self.faults),
            "faults_detected": len(detect),
            "faults_recovered": len(recover),
            "max_detect_s": round(max(detect), 1) if detect else None,
            "max_recover_s": round(max(recover), 1) if recover else None,
            "runs": dict(sorted(outcomes.items())),
            "retention_deleted": self._retention_days(retention_log.DELETED),
            "retention_kept": self._retention_days(retention_log.KEPT),
            "peak_rss_mb": {kind: round(rss / 2**20, 1) for kind, rss in sorted(self.memory.items())},
            "wall_s": self.manifest.get("wall_s"),
        }

    def _retention_days(self, action: str) -> list[str]:
        return sorted({entry["day"] for entry in self.retention if entry["action"] == action})

    def reasons(self) -> list[str]:
        found = [f"{d.day}: {p}" for d in self.days for p in d.problems]
        attempts, bound = self.first_attempts, self.calls_lower_bound
        if attempts > CALLS_OVER_BOUND * bound:
            found.append(
                f"{attempts} recovery calls ({self.calls} made, {self.retries} of them retries) exceed "
                f"{CALLS_OVER_BOUND}x the lower bound {bound}"
            )
        if attempts < bound:
            found.append(
                f"{attempts} recovery calls ({self.calls} made, {self.retries} of them retries) are fewer than "
                f"the lower bound {bound}: miscounted, or the recoveries did not ask for every missing "
                "symbol-minute"
            )
        return found + self.alerts.problems + self.problems

    def passed(self) -> bool:
        return bool(self.days) and not self.reasons()

    def json_line(self) -> str:
        line = {**self.totals(), "passed": self.passed(), "reasons": self.reasons()}
        return json.dumps(line, ensure_ascii=False)

    def render_table(self) -> str:
        return render(self)


def _read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def _certified(day: str, lake_dir: Path, from_instance: bool | None) -> bool | None:
    summary = read_summary(date.fromisoformat(day), lake_dir)
    if summary is not None:
        return bool(summary.get("certified"))
    return from_instance


def _exchange_calls(stats: dict) -> tuple[int, int]:
    calls = stats.get("calls", {})
    data = sum(int(n) for name, n in calls.items() if not name.endswith(CREDENTIAL_ENDPOINTS))
    return data, int(stats.get("rate_limited", 0))


def _retention_during(lake_dir: Path, started: float, ended: float | None) -> list[dict]:
    until = ended if ended is not None else math.inf
    return [e for e in retention_log.read(lake_dir) if started <= float(e["recorded_wall"]) <= until]


def _retention_problems(entries: list[dict], lake_dir: Path) -> list[str]:
    problems = []
    for entry in entries:
        if entry["action"] != retention_log.DELETED:
            continue
        summary = read_summary(date.fromisoformat(entry["day"]), lake_dir)
        if summary is None or not summary.get("certified"):
            problems.append(f"retention deleted {entry['day']}, which is not certified")
    return problems


def _day_row(
    day: str, manifest: dict, lake_dir: Path, instance: InstanceFigures, retention: list[dict]
) -> DayRow:
    records = instance.days.get(day)
    truth = measure_day(date.fromisoformat(day), manifest["exchange"], lake_dir,
                        records.same_day_fetches if records else set())
    certified = _certified(day, lake_dir, records.certified if records else None)
    problems = list(truth.problems)
    if certified is None:
        problems.insert(0, "no quality report")
    elif not certified:
        problems.insert(0, "not certified")
    actions = [e for e in retention if e["day"] == day]
    action = f"{actions[-1]['action']}" if actions else ""
    if actions and actions[-1]["action"] == retention_log.KEPT:
        action += f": {actions[-1]['reason']}"
    elif actions and actions[-1]["action"] == retention_log.DELETED:
        action += f" {actions[-1].get('paths', '?')} paths"
    return DayRow(
        day, certified, truth,
        calls=records.recovery_calls if records else 0,
        rate_limited=records.rate_limited if records else 0,
        recoveries=records.recoveries if records else 0,
        retries=records.retries if records else 0,
        retention=action, problems=problems,
    )


def measure(run_dir: Path) -> SoakFigures:
    run_dir = Path(run_dir)
    manifest = _read_json(run_dir / "manifest.json", None)
    if manifest is None:
        raise FileNotFoundError(f"{run_dir / 'manifest.json'} is missing: not a soak run directory")
    lake_dir = Path(manifest["lake_dir"])
    started, ended = float(manifest["started_wall"]), manifest.get("ended_wall")
    instance = read_instance(Path(manifest["dagster_home"]), manifest["days"], since_wall=started)
    retention = _retention_during(lake_dir, started, ended)
    still_open = open_in_redis(manifest["redis_url"]) if manifest.get("redis_url") else None
    alerts = pair(read_alerts(run_dir / "alerts.jsonl"), still_open)
    faults = [json.loads(line) for line in _lines(run_dir / "faults.jsonl")]
    exchange_calls, exchange_rate_limited = _exchange_calls(_read_json(run_dir / "calls.json", {}))
    problems = [instance.problem] if instance.problem else []
    return SoakFigures(
        manifest=manifest,
        days=[_day_row(day, manifest, lake_dir, instance, retention) for day in manifest["days"]],
        faults=time_faults(faults, alerts, instance.runs),
        alerts=alerts,
        instance=instance,
        retention=retention,
        memory={k: int(v) for k, v in _read_json(run_dir / "memory.json", {}).items()},
        exchange_calls=exchange_calls,
        exchange_rate_limited=exchange_rate_limited,
        problems=problems + _retention_problems(retention, lake_dir),
    )


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
