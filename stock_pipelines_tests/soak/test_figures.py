"""The soak's figures on a real run directory: a past day with an outage, its archive written by
`sim day`, the whole pipeline materialized against the simulated exchange into a Dagster instance
on disk, and hand-written faults, alerts and retention actions. The figures must equal what the
simulator's truth says, and `passed()` must fail, saying why, on a lost bar, a duplicated alert
and an uncertified day deleted."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import httpx
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.archive import retention_log
from stock_pipelines.defs.assets.broker_sample import quality_broker_sample
from stock_pipelines.defs.assets.day_volumes import broker_day_volumes
from stock_pipelines.defs.assets.quality_report import quality_report
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.checks.day_verdict import minute_bars_day_certified
from stock_pipelines.defs.checks.minute_bars_checks import minute_bars_checks
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.soak.figures import DayRow, SoakFigures, measure
from stock_pipelines.soak.figures_alerts import AlertFigures
from stock_pipelines.soak.figures_dagster import InstanceFigures
from stock_pipelines.soak.figures_truth import (
    TruthFigures,
    calls_any_day_bound,
    calls_lower_bound,
    calls_same_day_bound,
)
from stock_pipelines_tests.conftest import RedisServer
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.past_day import the_morning_after
from stock_pipelines_tests.truth import truth_bars

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PIPELINE = [
    raw_ticks, tick_minute_bars, broker_day_volumes, gap_report, recovered_minute_bars, minute_bars,
    quality_broker_sample, *minute_bars_checks, quality_report, minute_bars_day_certified,
]

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 23, 3
OUTAGE = Outage.parse("10:00-10:45", DAY)  # 45 minutes: one past-day page, two of today's
KEY, SECRET = "figures-key", "figures-secret"
STARTED_WALL = 1_000.0  # the hand-written faults and alerts' wall clock
FAULTS = [
    {"id": "f1", "kind": "collector_sigkill", "subject": "sim-kis-1", "day": DAY.isoformat(),
     "injected_wall": 1_010.0, "injected_exchange": "2026-11-20T10:00:00+09:00", "cleared_wall": 1_011.0},
    # the same collector a day earlier: the 2026-11-20 incident must not be borrowed for it
    {"id": "f2", "kind": "collector_sigstop", "subject": "sim-kis-1", "day": "2026-11-19",
     "injected_wall": 1_020.0, "injected_exchange": "2026-11-20T11:00:00+09:00", "cleared_wall": None},
]


def alert(event: str, received: float, incident_id: str = "collector_down:sim-kis-1:1") -> dict:
    return {"received_wall": received, "body": {
        "event": event, "kind": "collector_down", "subject": "sim-kis-1", "incident_id": incident_id,
        "text": f"[stock_pipelines] {event.upper()} collector_down sim-kis-1",
        "at": "2026-11-20T10:01:00+09:00", "opened_at": "2026-11-20T10:01:00+09:00",
    }}


@pytest.fixture(scope="module")
def run_day(tmp_path_factory):
    """A materialized past day and its exchange's truth; yields the pieces of a run directory."""
    base = tmp_path_factory.mktemp("soak")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    session = krx_calendar().session(DAY)
    config = ExchangeConfig(day=DAY, seed=SEED, symbols=SYMBOLS, pinned=True,
                            start=session.close + timedelta(hours=1), credentials={KEY: SECRET})
    home, data, archive = base / "dagster_home", base / "data", base / "archive"
    home.mkdir()
    written = write_day_archive(archive, DAY, seed=SEED, symbols=SYMBOLS, outages=[OUTAGE])
    try:
        with run_exchange(config) as url, pytest.MonkeyPatch.context() as patch:
            patch.setenv("STOCK_PIPELINES_DATA_DIR", str(data))
            patch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(archive))
            patch.setenv("STOCK_PIPELINES_REDIS_PREFIX", base.name)
            patch.setenv("REDIS_URL", redis.url)
            patch.setenv(ENV_FAKE_NOW, fake_now_value(the_morning_after(DAY)))
            res = resources(
                redis=RedisResource(url=redis.url),
                broker=BrokerResource(broker="kis", base_url=str(url), app_key=KEY, app_secret=SECRET),
            )
            with dg.DagsterInstance.from_config(str(home)) as instance:
                result = dg.materialize(
                    PIPELINE, partition_key=DAY.isoformat(), instance=instance, resources=res
                )
            assert result.success
            stats = httpx.get(f"{url}/admin/stats", timeout=10).json()
        recovery = result.asset_materializations_for_node("recovered_minute_bars")[0].metadata
        yield {
            "base": base, "home": home, "data": data, "archive": archive, "redis_url": redis.url,
            "stats": stats, "written": written, "recovery_calls": recovery["calls"].value,
        }
    finally:
        redis.stop()


def write_run(run_dir, day, *, data, alerts, retention_days=(), retention=()) -> None:
    run_dir.mkdir()
    manifest = {
        "seed": 5, "days": [DAY.isoformat()], "quick": True, "exchange_url": "http://127.0.0.1:1",
        "exchange": {
            "seed": SEED, "symbols": SYMBOLS, "activity": 1.0, "speed": 60.0, "first_day": DAY.isoformat()
        },
        "redis_url": day["redis_url"], "dagster_home": str(day["home"]), "archive_dir": str(day["archive"]),
        "lake_dir": str(data), "started_wall": STARTED_WALL, "ended_wall": None, "wall_s": 321.5,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in FAULTS))
    (run_dir / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts))
    (run_dir / "memory.json").write_text(json.dumps({"collector": 150 * 2**20, "exchange": 300 * 2**20}))
    (run_dir / "calls.json").write_text(json.dumps(day["stats"]))
    retention_log.append(data, [
        {"recorded_wall": STARTED_WALL + 50, "at": "2026-11-20T19:00:00+09:00", "as_of": DAY.isoformat(),
         "day": d, "action": "deleted", "reason": "older than 3 trading days", "paths": 2}
        for d in retention_days
    ] + list(retention))


def truth_of_the_day():
    sim = SimDay(DAY, seed=SEED, symbols=SYMBOLS)
    return sim, truth_bars(sim)


def in_outage(bars: pl.DataFrame) -> pl.DataFrame:
    # 09:59 too: a trade of that minute received after 10:00 is lost with the outage
    start, end = (at.astimezone(UTC) for at in (OUTAGE.start - timedelta(minutes=1), OUTAGE.end))
    return bars.filter(pl.col("minute").is_between(start, end, closed="left"))


def test_a_healed_day_measures_as_the_truth_and_passes(run_day, tmp_path):
    sim, truth = truth_of_the_day()
    run_dir = tmp_path / "run"
    write_run(run_dir, run_day, data=run_day["data"],
              alerts=[alert("firing", 1_012.5), alert("resolved", 1_100.0)])
    figures = measure(run_dir)

    row = figures.days[0]
    assert (row.day, row.certified, row.problems) == (DAY.isoformat(), True, [])
    assert row.truth.bars_expected == truth.height and row.truth.bars_lost == row.truth.bars_wrong == 0
    assert row.truth.trades_expected == len(sim) == run_day["written"].trades_total
    assert row.truth.trades_archived == run_day["written"].trades_written < len(sim)
    # every missing symbol-minute lies in 09:59-10:44, inside one past-day page (120 bars): one call per
    # symbol that lost bars; on the day itself a call returns 30 bars, so each such symbol needs two
    symbols = in_outage(truth)["symbol"].n_unique()
    assert row.truth.calls_lower_bound == row.truth.calls_any_day_bound == symbols > 0
    assert row.truth.calls_same_day_bound == 2 * symbols
    inside = in_outage(truth).filter(pl.col("minute") >= OUTAGE.start.astimezone(UTC))
    assert row.truth.missing_symbol_minutes >= inside.height
    assert row.calls == run_day["recovery_calls"] > 0 and row.recoveries == 1
    assert figures.exchange_calls >= row.calls  # the exchange also served the sample and day volumes

    sigkill, latency = figures.faults
    assert (sigkill.detect_s, sigkill.recover_s) == (2.5, 90.0)
    assert sigkill.detected_by == "incident collector_down sim-kis-1"
    assert (latency.detect_s, latency.recover_s, latency.detected_by) == (None, None, "not detected")

    line = json.loads(figures.json_line())
    assert list(line)[:8] == ["days", "days_certified", "bars_lost", "calls", "calls_lower_bound",
                              "incidents", "alerts", "resolutions"]
    assert line["days"] == line["days_certified"] == 1 and line["bars_lost"] == 0
    assert (line["calls"], line["calls_lower_bound"]) == (row.calls, row.truth.calls_lower_bound)
    assert (line["calls_same_day_bound"], line["calls_any_day_bound"]) == (2 * symbols, symbols)
    assert (line["incidents"], line["alerts"], line["resolutions"]) == (1, 1, 1)
    assert line["runs"] == {"SUCCESS": 1} and line["peak_rss_mb"] == {"collector": 150.0, "exchange": 300.0}
    assert line["passed"] is True and line["reasons"] == [] and figures.passed()
    table = figures.render_table()
    assert f"{DAY.isoformat()}  yes" in table and table.rstrip().endswith("PASSED")


def test_a_lost_bar_a_second_alert_and_an_uncertified_deletion_fail_and_say_why(run_day, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(run_day["data"], data)
    final = lake.read_partition("minute_bars", DAY, data)
    lost = final.filter(pl.col("symbol") == "005930").sort("minute").row(100, named=True)
    lake.write_partition(
        final.filter(~((pl.col("symbol") == lost["symbol"]) & (pl.col("minute") == lost["minute"]))),
        "minute_bars", DAY, data,
    )
    run_dir = tmp_path / "run"
    write_run(run_dir, run_day, data=data, retention_days=["2026-11-19"], alerts=[
        alert("firing", 1_012.5), alert("firing", 1_013.0), alert("resolved", 1_100.0),
    ])
    figures = measure(run_dir)

    row = figures.days[0]
    at = lost["minute"].astimezone(SEOUL)
    assert row.truth.bars_lost == 1
    assert row.problems == [f"1 bars lost: 005930 {at:%H:%M}"]
    assert not figures.passed()
    assert figures.reasons() == [
        f"{DAY.isoformat()}: 1 bars lost: 005930 {at:%H:%M}",
        "incident collector_down sim-kis-1 (collector_down:sim-kis-1:1): 2 firing alerts, not 1",
        "retention deleted 2026-11-19, which is not certified",
    ]
    line = json.loads(figures.json_line())
    assert (line["bars_lost"], line["incidents"], line["alerts"], line["resolutions"]) == (1, 1, 2, 1)
    assert line["retention_deleted"] == ["2026-11-19"] and line["passed"] is False
    assert figures.render_table().splitlines()[-4:] == ["FAILED", *(f"  - {r}" for r in figures.reasons())]


def test_retention_deleting_a_certified_day_of_the_run_shows_in_its_row_and_passes(run_day, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(run_day["data"], data)
    run_dir = tmp_path / "run"
    write_run(run_dir, run_day, data=data, alerts=[alert("firing", 1_012.5), alert("resolved", 1_100.0)],
              retention=[
                  {"recorded_wall": STARTED_WALL + 60, "at": "2026-11-25T19:00:00+09:00", "as_of": "2026-11-25",
                   "day": DAY.isoformat(), "action": "deleted", "reason": "certified, older than 3 trading days",
                   "paths": 3},
                  {"recorded_wall": STARTED_WALL - 60, "at": "2026-11-24T19:00:00+09:00", "as_of": "2026-11-24",
                   "day": "2026-11-17", "action": "deleted", "reason": "before the run", "paths": 1},
                  {"recorded_wall": STARTED_WALL + 60, "at": "2026-11-25T19:00:00+09:00", "as_of": "2026-11-25",
                   "day": "2026-11-18", "action": "kept", "reason": "not certified", "paths": 2},
              ])
    figures = measure(run_dir)

    assert figures.days[0].retention == "deleted 3 paths" and figures.passed(), figures.reasons()
    line = json.loads(figures.json_line())
    # what happened before the run started is not the run's
    assert (line["retention_deleted"], line["retention_kept"]) == ([DAY.isoformat()], ["2026-11-18"])
    table = figures.render_table().splitlines()
    assert table[2].startswith(f"{DAY.isoformat()}  yes") and table[2].endswith("deleted 3 paths")
    assert table[3].startswith("total") and table[3].endswith("1 deleted")
    assert "retention deleted 2026-11-20; kept 2026-11-18" in table


def test_a_directory_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing: not a soak run directory"):
        measure(tmp_path)



def _judged(calls: int, bound: int, retries: int = 0) -> list[str]:
    truth = TruthFigures(bars_expected=10, bars_lost=0, bars_wrong=0, bars_extra=0, trades_expected=5,
                         trades_archived=5, missing_symbol_minutes=40, calls_lower_bound=bound,
                         calls_same_day_bound=2 * bound, calls_any_day_bound=bound // 2)
    day = DayRow(day=DAY.isoformat(), certified=True, truth=truth, calls=calls, rate_limited=0, recoveries=1,
                 retention="", retries=retries)
    return SoakFigures(manifest={}, days=[day], faults=[], alerts=AlertFigures([], 0, 0),
                       instance=InstanceFigures(), retention=[], memory={}, exchange_calls=calls,
                       exchange_rate_limited=0).reasons()


def test_first_attempts_are_judged_within_1_2x_of_the_lower_bound_and_never_below_it():
    assert _judged(calls=12, bound=10) == []
    assert _judged(calls=16, bound=10, retries=4) == []  # a fault's 500s cost retries, not plan calls
    assert _judged(calls=13, bound=10) == [
        "13 recovery calls (13 made, 0 of them retries) exceed 1.2x the lower bound 10"
    ]
    assert _judged(calls=11, bound=10, retries=2) == [
        "9 recovery calls (11 made, 2 of them retries) are fewer than the lower bound 10: "
        "miscounted, or the recoveries did not ask for every missing symbol-minute"
    ]


def _minutes(symbol: str, first: tuple[int, int], count: int) -> pl.DataFrame:
    start = datetime(2026, 11, 20, *first, tzinfo=SEOUL).astimezone(UTC)
    return pl.DataFrame({"symbol": [symbol] * count, "minute": [start + timedelta(minutes=i) for i in range(count)]},
                        schema={"symbol": pl.String, "minute": pl.Datetime("us", "UTC")})


def _fetched(symbol: str, start: tuple[int, int], end: tuple[int, int], at: datetime) -> dict:
    return {"symbol": symbol, "start": datetime(2026, 11, 20, *start, tzinfo=SEOUL).astimezone(UTC),
            "end": datetime(2026, 11, 20, *end, tzinfo=SEOUL).astimezone(UTC), "broker": "kis",
            "fetched_at": at.astimezone(UTC)}


def test_each_missing_minute_counts_at_the_page_of_its_first_fetch():
    """45 minutes of A fetched on the day (two 30-bar pages), 45 of B fetched the next morning (one
    120-bar page), 10 of C never fetched (counted at the larger page: the bound stays a bound)."""
    on_the_day = datetime(2026, 11, 20, 14, 0, tzinfo=SEOUL)
    next_morning = datetime(2026, 11, 23, 8, 0, tzinfo=SEOUL)
    missing = pl.concat([_minutes("A", (10, 0), 45), _minutes("B", (10, 0), 45), _minutes("C", (13, 0), 10)])
    fetched = pl.DataFrame([
        _fetched("A", (10, 0), (10, 45), on_the_day),
        _fetched("A", (10, 0), (10, 45), next_morning),   # fetched again later: the first fetch decides
        _fetched("B", (9, 50), (11, 0), next_morning),
    ], schema={"symbol": pl.String, "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
               "broker": pl.String, "fetched_at": pl.Datetime("us", "UTC")})
    assert calls_lower_bound(missing, DAY, fetched, {on_the_day}) == 2 + 1 + 1
    assert calls_lower_bound(missing, DAY, fetched, set()) == calls_any_day_bound(missing, DAY) == 3
    assert calls_same_day_bound(missing, DAY) == 2 + 2 + 1
