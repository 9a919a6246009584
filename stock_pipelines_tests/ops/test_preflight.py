"""Pre-flight: every check runs, and a failure names exactly what is wrong (never a secret)."""

import json
import os
from datetime import date
from pathlib import Path

import pytest

from stock_pipelines.ops.preflight import run_preflight
from stock_pipelines.sim.runner import run_exchange


@pytest.fixture
def exchange():
    with run_exchange(symbols=4, credentials={"pf-key": "pf-secret"}) as url:
        yield url


@pytest.mark.clock
def test_everything_in_place_passes_including_a_real_token(redis_server, exchange, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    environ = {
        "KIS_APP_KEY": "pf-key",
        "KIS_APP_SECRET": "pf-secret",
        "KIS_BASE_URL": str(exchange),
        "STOCK_PIPELINES_MAX_LOAD_PER_CPU": "1000",  # this test machine is shared
        "STOCK_PIPELINES_MIN_AVAILABLE_MEMORY_MB": "1",
    }
    report = run_preflight(
        broker="kis",
        archive_dir=tmp_path / "archive",
        token_dir=tmp_path / "tokens",
        redis_ping=redis_server.client().ping,
        dagster_storage=lambda: "ok",
        environ=environ,
    )
    assert report.ok, report.describe()
    assert [r.name for r in report.results] == [
        "kis credentials",
        "redis",
        "dagster storage",
        "archive writable",
        "free disk",
        "memory",
        "cpu",
        "kis reachable",
        "kis token",
        "kis primary feed",
        "calendar",
    ]
    assert report.describe() == "all 11 pre-flight checks passed"


@pytest.mark.clock
def test_a_failure_lists_what_is_wrong(redis_server, tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    os.chmod(read_only, 0o500)
    redis_server.kill()

    def dead_ping():
        import redis

        return redis.Redis.from_url(redis_server.url, socket_connect_timeout=1).ping()

    fake_key = "PSk3yN0tF0rL0gs7731"  # distinctive: it may appear nowhere in what the report says
    environ = {"KIS_APP_KEY": fake_key, "STOCK_PIPELINES_MIN_FREE_GB": "1e9"}
    report = run_preflight(
        broker="kis",
        archive_dir=read_only / "archive" if os.geteuid() else Path("/proc/archive"),
        token_dir=tmp_path,
        redis_ping=dead_ping,
        environ=environ,
    )
    assert not report.ok
    failed = {r.name: r.detail for r in report.failures}
    assert failed["kis credentials"] == "PermissionError: missing KIS_APP_SECRET"
    assert failed["redis"].startswith("ConnectionError")
    assert "archive writable" in failed
    assert failed["free disk"].startswith("OSError: ") and "need 1e+09 GB" in failed["free disk"]
    assert failed["kis reachable"] == "KIS_BASE_URL is not set"
    assert report.describe().startswith(
        "pre-flight failed: kis credentials: PermissionError: missing KIS_APP_SECRET; "
    )
    assert fake_key not in report.describe() and fake_key not in json.dumps(report.to_json(), default=str)



@pytest.mark.parametrize(
    "today, ok, warning",
    [
        (date(2026, 12, 1), True, None),
        (date(2028, 11, 20), True, "KRX calendar supported through 2028-12-31: 41 days left, below 60"),
        (date(2029, 1, 2), False, None),  # a failure, not a warning
    ],
)
def test_the_calendar_horizon_is_checked_and_warned_about_below_60_days(tmp_path, today, ok, warning):
    report = run_preflight(
        broker="kis", archive_dir=tmp_path / "archive", token_dir=tmp_path, redis_ping=lambda: True,
        environ={}, today=today,
    )
    (calendar,) = [r for r in report.results if r.name == "calendar"]
    assert calendar.ok is ok, calendar
    if ok:
        assert calendar.detail.startswith("KRX calendar supported through 2028-12-31")
    else:
        assert calendar.detail == "CalendarRangeError: 2029-01-02 is outside the supported range 2020-01-01..2028-12-31"
    assert [w[: len(warning)] for w in report.warnings] == ([warning] if warning else [])
    assert report.to_json()["warnings"] == report.warnings
