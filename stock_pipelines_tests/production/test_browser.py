"""The Dagster UI in headless Chromium (Debian's, driven by Playwright): `dagster dev` started by the
test, a backfill of three trading days of raw_ticks launched from the asset page, and the asset
check results found per partition in the UI. Screenshots go to test-artifacts/browser/."""

import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.sim.archive_day import write_day_archive
from stock_pipelines_tests.capabilities import require_capability
from stock_pipelines_tests.dagster_dev import REPO_ROOT, DagsterDev, dagster_dev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
# What works on these machines: no GPU, no sandbox as root, and no calls home on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
CHECK_NAMES = sorted(key.name for checks_def in raw_ticks_checks for key in checks_def.check_keys)

BACKFILLS = """{ partitionBackfillsOrError(limit: 5) { __typename ... on PartitionBackfills { results {
  id status partitionNames runs(limit: 10) { runId status tags { key value } } } } } }"""
ALL_RUNS = "{ runsOrError { ... on Runs { results { runId jobName } } } }"
WORKSPACE = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def three_trading_days() -> list[date]:
    """The three trading days before the newest partition the UI offers, inside the launch dialog's
    default 90-day view. The UI lists partitions by Dagster's own clock (the real one, which no
    project clock can move), so they are picked from Dagster's partition list too."""
    return [date.fromisoformat(key) for key in trading_day_partitions.get_partition_keys()[-4:-1]]


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator:
    require_capability("chromium", CHROMIUM.exists(),
                       f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does this as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a new, empty profile
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def shot(page, name: str, directory: Path = ARTIFACTS) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def wait_loaded(dev: DagsterDev, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        entries = dev.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            return
        assert time.monotonic() < deadline, f"code location not loaded: {entries}"
        time.sleep(0.5)


def wait_backfill(dev: DagsterDev, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        results = dev.graphql(BACKFILLS)["partitionBackfillsOrError"]["results"]
        if results and results[0]["status"] not in {"REQUESTED", "CANCELING"}:
            runs = results[0]["runs"]
            if runs and all(run["status"] in {"SUCCESS", "FAILURE", "CANCELED"} for run in runs):
                return results[0]
        assert time.monotonic() < deadline, f"backfill not done in {timeout}s: {results}"
        time.sleep(1)


def test_backfill_from_the_ui_shows_check_results_per_partition(tmp_path: Path, browser_page, redis_server):
    days = three_trading_days()
    for day in days:
        write_day_archive(tmp_path / "archive", day, symbols=4, activity=0.3, corrupt=2)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    env = {
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path / "lake"),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(tmp_path / "archive"),
        "REDIS_URL": redis_server.url,
        # the daemon's sensors stay quiet: this test is about the backfill
        "FEATURE_AUTO_RECOVERY_ENABLED": "false",
        "FEATURE_HEARTBEAT_MONITORING_ENABLED": "false",
        "FEATURE_PREFLIGHT_ENABLED": "false",
    }
    page = browser_page
    with dagster_dev(tmp_path, env=env) as dev:
        wait_loaded(dev)
        # they tick on the real clock (08:30; 15:40-17:50 on weekdays) and would launch runs mid-test
        dev.stop_schedules("end_of_day_schedule", "preflight_schedule")
        # the first-visit newsletter dialog, whenever it appears (late on a loaded machine)
        page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                 lambda _: page.get_by_role("button", name="Skip").click())
        page.goto(f"{dev.url}/assets/raw_ticks")
        shot(page, "01-asset-page")

        page.get_by_role("button", name="Materialize…").click()
        # raw_ticks_quarantine is written by the same step: the UI says so and asks to confirm
        extra = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
        extra.get_by_text("raw_ticks_quarantine", exact=True).wait_for()
        extra.get_by_role("button", name="Confirm").click()
        partitions = page.get_by_placeholder("No matching partitions")
        partitions.fill(f"[{days[0]}...{days[-1]}]")
        partitions.press("Enter")
        dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
        shot(page, "02-launch-dialog")
        dialog.get_by_text("3 partitions", exact=True).wait_for()
        shot(page, "03-backfill-dialog")
        dialog.get_by_role("button", name="Launch backfill").click()

        backfill = wait_backfill(dev)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert sorted(backfill["partitionNames"]) == [d.isoformat() for d in days]
        runs = backfill["runs"]
        assert len(runs) == 3 and {run["status"] for run in runs} == {"SUCCESS"}, runs
        for run in runs:
            assert {"key": "dagster/from_ui", "value": "true"} in run["tags"]
        every_run = dev.graphql(ALL_RUNS)["runsOrError"]["results"]
        # no schedule's; the archive's freshness sensor records a changed verdict with a check run
        every_run = [r for r in every_run if r["jobName"] != "tick_archive_fresh_job"]
        assert sorted(r["runId"] for r in every_run) == sorted(r["runId"] for r in runs), every_run

        page.goto(f"{dev.url}/assets/raw_ticks?view=checks")
        page.get_by_text(f"Checks ({len(CHECK_NAMES)})", exact=True).wait_for()
        shot(page, "04-checks")
        for name in CHECK_NAMES:
            page.get_by_title(name, exact=True).first.click()
            page.get_by_text("Execution history", exact=True).click()
            rows = page.locator("tr").filter(has_text=days[0].isoformat())
            rows.first.wait_for()
            texts = {day: page.locator("tr").filter(has_text=day.isoformat()).all_inner_texts()
                     for day in days}
            shot(page, f"05-history-{name}")
            for day in days:
                assert len(texts[day]) == 1, (name, day, texts)
                assert "Passed" in texts[day][0], (name, day, texts[day])

        page.get_by_text("Partitions", exact=True).last.click()
        page.get_by_text("Passed (3)").wait_for()
        shot(page, "06-check-partitions")
