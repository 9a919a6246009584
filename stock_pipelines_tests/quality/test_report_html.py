"""The HTML report renders in a real browser (headless Chromium) with both charts: the gap
timeline (gaps coloured by what filled them, holes in red) and completeness over recent days."""

import shutil
import subprocess
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pytest

from stock_pipelines.cli import main
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.resources import RedisResource
from stock_pipelines.quality.store import read_summary, report_dir
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines_tests.capabilities import require_capability
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.past_day import pin_clock_after

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DAY = date(2026, 11, 20)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "headless_shell")


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class SvgCensus(HTMLParser):
    """Counts elements by (svg id, tag, class) in the DOM the browser produced."""

    def __init__(self) -> None:
        super().__init__()
        self.svg: str | None = None
        self.found: dict[tuple[str | None, str, str], int] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "svg":
            self.svg = attributes.get("id")
        key = (self.svg, tag, attributes.get("class") or "")
        self.found[key] = self.found.get(key, 0) + 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg = None

    def count(self, svg: str, tag: str, cls: str = "") -> int:
        return sum(
            n
            for (s, t, c), n in self.found.items()
            if s == svg and t == tag and (not cls or cls in c.split())
        )


def run_browser(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_html_report_renders_with_its_charts_in_headless_chromium(tmp_path, monkeypatch, capsys):
    binary = browser()
    require_capability("chromium", binary is not None,
                       "no Chromium binary on PATH (apt-get install -y chromium): cannot render the HTML report")
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("STOCK_PIPELINES_QUALITY_REST_CALLS", "0")
    pin_clock_after(monkeypatch, DAY)
    write_day_archive(
        tmp_path / "archive",
        DAY,
        seed=5,
        symbols=8,
        outages=[Outage.parse("10:00-10:20", DAY), Outage.parse("14:00-14:05", DAY)],
    )
    result = dg.materialize(
        [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars],
        selection=[raw_ticks, tick_minute_bars, gap_report, minute_bars],  # no recovery: the day keeps holes
        partition_key=DAY.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(redis=RedisResource(url="redis://127.0.0.1:1/0")),
    )
    assert result.success
    assert main(["report", DAY.isoformat(), "--build"]) == 0
    page = report_dir(DAY) / "report.html"
    assert str(page) in capsys.readouterr().out
    summary = read_summary(DAY)
    assert summary["symbols_with_holes"] and not summary["certified"]

    dom = run_browser(binary, "--dump-dom", page.as_uri()).stdout
    census = SvgCensus()
    census.feed(dom)
    gaps = census.count("gap-timeline", "rect", "gap")
    assert gaps >= 2  # at least one downtime gap per outage
    assert census.count("gap-timeline", "rect", "hole") >= len(summary["symbols_with_holes"])
    assert census.count("gap-timeline", "text") > 6  # hour labels and lane names
    assert census.count("completeness-trend", "rect", "day") == 20  # this day and the 19 before it
    assert census.count("completeness-trend", "rect", "missing-report") == 19
    assert census.count("completeness-trend", "line", "threshold") >= 1
    assert "NOT CERTIFIED" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quality_report.png"
    shot.unlink(missing_ok=True)
    run_browser(binary, f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
