"""Issue 15, item 4: a backfill of every daily asset over five past trading days, launched through
the webserver's GraphQL API as the UI's "Materialize all" over a date range does, against the
simulator's history.

Real parts only: Redis (`redis_server`), `stock-pipelines sim day` writing each day's archive
and its truth, `stock-pipelines sim exchange` serving the days' REST history (its clock pinned
after the last day's close), and `dagster dev` (webserver and daemon; the asset backfill and its
runs are the daemon's). The project clock is pinned to the morning after the last day.

DAYS are 2026-11-16..20: 11-19 is the CSAT day (10:00-16:30), and OUTAGES put collector outages
on three of the days (one across the CSAT day's late open hour), so those days' bars come back
from the broker's REST. Then: the backfill completes, every run it launched succeeded, every asset
check of every daily asset has a passed execution for each day, and each day's minute_bars equal
the bars built from that day's truth (every trade the exchange printed, `truth.py`) exactly.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.market import krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.dagster_dev import QUICK_RUN_QUEUE, DagsterDev, dagster_dev, quiet_env
from stock_pipelines_tests.no_scheduler import INSTANCE_YAML as NO_SCHEDULER
from stock_pipelines_tests.past_day import the_morning_after
from stock_pipelines_tests.sensors.live_collectors import stop_sensor
from stock_pipelines_tests.truth import expected_bars

pytestmark = [pytest.mark.integration, pytest.mark.timeout(720)]

DAYS = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
CSAT_DAY = date(2026, 11, 19)
SEED, SYMBOLS = 11, 5  # five symbols prove the same as ten (every check, every bar) in less time
OUTAGES = {
    date(2026, 11, 17): ["10:05-10:25", "14:00-14:12"],
    CSAT_DAY: ["10:20-10:40"],
    date(2026, 11, 20): ["13:10-13:30"],
}
LOCATION = {"repositoryLocationName": "stock_pipelines", "repositoryName": "__repository__"}
BAR_COLUMNS = ["symbol", "minute", "open", "high", "low", "close", "volume"]

DAILY_ASSETS = """{ assetNodes { assetKey { path } isMaterializable isPartitioned
  partitionDefinition { type }
  assetChecksOrError { ... on AssetChecks { checks { name partitionDefinition { type } } } } } }"""
LAUNCH_BACKFILL = """mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }"""
BACKFILL = """query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status isAssetBackfill error { message }
    runs(limit: 100) { runId status tags { key value } } } } }"""
CHECK_EXECUTIONS = """query Executions($asset: AssetKeyInput!, $check: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $asset, checkName: $check, limit: $limit) {
    runId status partition evaluation { success description } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def write_days(archive: Path, truth_dir: Path) -> None:
    """Each day's archive and truth from the real `sim day` command, the five at once."""
    commands = []
    for day in DAYS:
        outages = [arg for window in OUTAGES.get(day, []) for arg in ("--outage", window)]
        commands.append([sys.executable, "-m", "stock_pipelines.cli", "sim", "day", "--date", day.isoformat(),
                         "--seed", str(SEED), "--symbols", str(SYMBOLS), "--out", str(archive),
                         "--truth", str(truth_dir / f"{day}.parquet"), *outages])
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    for day, process in zip(DAYS, processes, strict=True):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (day, err)
        summary = json.loads(out)
        assert (summary["trades_missing"] > 0) == (day in OUTAGES), (day, summary)


def truth_of(day: date, truth_dir: Path) -> pl.DataFrame:
    """The day's bars built from every trade the exchange printed (archived or lost)."""
    trades = pl.read_parquet(truth_dir / f"{day}.parquet").sort("sym", "cum")
    rows = trades.select("sym", "ts", "px", "qty").iter_rows()
    return expected_bars(rows, krx_calendar().session(day)).sort("symbol", "minute")


def daily_assets(dev: DagsterDev) -> dict[str, dict[str, bool]]:
    """Every materializable daily-partitioned asset, with its per-day checks (name: partitioned?):
    what the UI selects with "Materialize all"."""
    nodes = dev.graphql(DAILY_ASSETS)["assetNodes"]
    return {
        "/".join(n["assetKey"]["path"]): {
            c["name"]: c["partitionDefinition"] is not None for c in (n["assetChecksOrError"].get("checks") or [])
        }
        for n in nodes
        if n["isMaterializable"] and n["isPartitioned"] and n["partitionDefinition"]["type"] == "TIME_WINDOW"
    }


def check_results(dev: DagsterDev, asset: str, check: str, partitioned: bool, run_of_day: dict) -> dict:
    """The check's execution in each day's run (one query for all the days). A check without
    partitions (the day's verdict) is stored unpartitioned, its description naming the day;
    Dagster also leaves a PLANNED record under the run's partition for it, which is not a result."""
    variables = {"asset": {"path": asset.split("/")}, "check": check, "limit": 4 * len(run_of_day)}
    executions = dev.graphql(CHECK_EXECUTIONS, variables)["assetCheckExecutions"]
    results = {}
    for day, run_id in run_of_day.items():
        in_run = [e for e in executions if e["runId"] == run_id
                  and e["partition"] == (day.isoformat() if partitioned else None)]
        assert len(in_run) == 1, (asset, check, day, executions)
        if not partitioned:
            assert in_run[0]["evaluation"]["description"].startswith(f"{day}:"), in_run
        results[day] = in_run[0]
    return results


def wait_backfill(dev: DagsterDev, backfill_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        backfill = dev.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if backfill["status"] in DONE:
            return backfill
        assert time.monotonic() < deadline, f"backfill not done in {timeout} s: {backfill}"
        time.sleep(2)


def test_a_five_day_backfill_launched_over_graphql_matches_the_simulator_truth(tmp_path, redis_server):
    archive, truth_dir, data = tmp_path / "archive", tmp_path / "truth", tmp_path / "data"
    write_days(archive, truth_dir)
    # the truth's bars (a Python loop over every trade) are built while the backfill runs
    truth_builder = ThreadPoolExecutor(max_workers=1)
    truths = truth_builder.submit(lambda: {day: truth_of(day, truth_dir) for day in DAYS})
    last = DAYS[-1]
    after_close = f"{krx_calendar().session(last).close.hour + 1}:00"
    exchange_args = ["--date", last.isoformat(), "--seed", str(SEED), "--symbols", str(SYMBOLS), "--pin",
                     "--start", after_close]
    with run_exchange_process(exchange_args) as exchange_url:
        env = {
            **quiet_env(data_dir=data, archive_dir=archive, redis_url=redis_server.url,
                        prefix=f"backfill-{tmp_path.name}", kis_url=str(exchange_url),
                        app_key="backfill-key", app_secret="backfill-secret"),
            ENV_FAKE_NOW: fake_now_value(the_morning_after(last)),
        }
        with dagster_dev(tmp_path, env=env, instance_yaml=NO_SCHEDULER + QUICK_RUN_QUEUE) as dev:
            stop_sensor(dev, "tick_archive_sensor")  # observes the wall clock's date, not DAYS
            assets = daily_assets(dev)
            assert {"raw_ticks", "tick_minute_bars", "gap_report", "recovered_minute_bars", "minute_bars",
                    "quality_report"} <= set(assets)
            params = {
                # the end-of-day job's "Materialize all…" over a range, as the UI sends it; without
                # the partition set (a pure asset backfill) Dagster 1.13 refuses this project's
                # multi-assets ("Targeted subset must match between every key in a non-subsettable
                # multi-asset")
                "selector": {"partitionSetName": "end_of_day_job_partition_set", "repositorySelector": LOCATION},
                "assetSelection": [{"path": key.split("/")} for key in sorted(assets)],
                "partitionNames": [day.isoformat() for day in DAYS],
                "fromFailure": False,
                "tags": [],
            }
            launched = dev.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill = wait_backfill(dev, launched["backfillId"], timeout=420)

            runs = backfill["runs"]
            assert backfill["status"] == "COMPLETED_SUCCESS", (
                backfill, dev.log.read_text()[-4000:])
            assert len(runs) == len(DAYS) and all(r["status"] == "SUCCESS" for r in runs), runs
            run_of_day = {date.fromisoformat(t["value"]): r["runId"]
                          for r in runs for t in r["tags"] if t["key"] == "dagster/partition"}
            assert set(run_of_day) == set(DAYS), run_of_day

            checked = 0
            for asset, checks in assets.items():
                for check, partitioned in checks.items():
                    for day, result in check_results(dev, asset, check, partitioned, run_of_day).items():
                        # trade completeness WARNs (blocking nothing) on a day whose outages lost
                        # trades: their bars come back from the broker, the trades do not (KIS
                        # serves only today's trades, and these days are past)
                        passes = check != "trade_completeness" or day not in OUTAGES
                        assert result["status"] == ("SUCCEEDED" if passes else "FAILED"), (asset, check, day, result)
                        assert result["evaluation"]["success"] is passes, (asset, check, day, result)
                        checked += 1
            assert checked >= 5 * len(DAYS)

        truth_builder.shutdown()
        for day, truth in truths.result().items():
            bars = lake.read_partition("minute_bars", day, data).select(BAR_COLUMNS).sort("symbol", "minute")
            assert bars.equals(truth), f"{day}: {bars.height} bars vs {truth.height} in the truth"
        csat = lake.read_partition("minute_bars", CSAT_DAY, data)
        assert csat["minute"].min() == krx_calendar().session(CSAT_DAY).open  # the 10:00 open
        for day in OUTAGES:  # the outages' minutes came back from the broker's REST
            assert "rest_kis" in set(lake.read_partition("minute_bars", day, data)["source"]), day
