"""tick_archive: per-partition observations and the freshness check ("logs not written")."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime

import dagster as dg

from stock_pipelines.defs.assets.tick_archive import (
    FRESH_CHECK,
    PARTITION_TAG,
    VERDICT_TAG,
    evaluate_tick_archive,
    record_verdict_changes,
    tick_archive_sensor,
)
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.market import SEOUL
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value

from .conftest import DAY, seoul_us, session_trades, write_day

NOW = datetime.fromtimestamp(seoul_us(10, 30) / 1e6, UTC)  # continuous trading on DAY


def archive(root=None):
    """The archive settings a test passes: its root, the documented defaults otherwise."""
    return ArchiveResource(archive_dir=str(root) if root else None).config()


def age_files(root, collector: str, seconds: float) -> None:
    for path in (root / collector).rglob("*.jsonl"):
        os.utime(path, (NOW.timestamp() - seconds, NOW.timestamp() - seconds))


def events(result):
    assert isinstance(result, dg.SensorResult)
    observation, evaluation = result.asset_events
    assert isinstance(observation, dg.AssetObservation) and isinstance(evaluation, dg.AssetCheckEvaluation)
    assert observation.partition == evaluation.partition == DAY.isoformat()
    assert evaluation.check_name == FRESH_CHECK
    return {k: v.value for k, v in observation.metadata.items()}, evaluation


def test_growing_files_are_observed_and_fresh(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 30, start=(10, 0)))
    write_day(
        archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades("005930", 10, start=(10, 0))]
    )
    age_files(archive_env, "kis-1", 20)
    age_files(archive_env, "kiwoom-1", 50)
    metadata, evaluation = events(evaluate_tick_archive(NOW, None, archive(archive_env)))
    assert evaluation.passed
    assert (metadata["files"], metadata["trade_lines"], metadata["collectors"]) == (2, 40, 2)
    assert metadata["streams"]["kis-1/trades"]["lines"] == 30
    assert metadata["streams"]["kis-1/trades"]["bytes"] > 0


def test_a_silent_collector_fails_the_check_within_minutes(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 30, start=(10, 0)))
    write_day(
        archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades("005930", 10, start=(10, 0))]
    )
    age_files(archive_env, "kis-1", 10)
    age_files(archive_env, "kiwoom-1", 300)  # stopped 5 minutes ago
    _, evaluation = events(evaluate_tick_archive(NOW, None, archive(archive_env)))
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "logs not written: kiwoom-1 (silent 300s)" in evaluation.description
    assert evaluation.metadata["stale_collectors"].value == {"kiwoom-1": 300.0}


def test_a_collector_that_wrote_yesterday_but_not_today_is_stale(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 5, start=(10, 0)))
    age_files(archive_env, "kis-1", 5)
    yesterday = date(2026, 11, 19)
    write_day(archive_env, "kiwoom-1", [("kiwoom", "005930", seoul_us(11, 0, day=yesterday), 100, 1, 1)])
    _, evaluation = events(evaluate_tick_archive(NOW, None, archive(archive_env)))
    assert not evaluation.passed and "kiwoom-1 (no file today)" in evaluation.description


def test_outside_continuous_trading_nothing_is_stale(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 5, start=(10, 0)))
    age_files(archive_env, "kis-1", 3 * 3600)
    evening = datetime.fromtimestamp(seoul_us(15, 25) / 1e6, UTC)  # closing auction
    _, evaluation = events(evaluate_tick_archive(evening, None, archive(archive_env)))
    assert evaluation.passed and "closing_auction" in evaluation.description


def test_cursor_counts_only_appended_bytes(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10, start=(10, 0)))
    first = evaluate_tick_archive(NOW, None, archive(archive_env))
    cursor = json.loads(first.cursor)
    assert cursor["day"] == DAY.isoformat()
    write_day(archive_env, "kis-1", session_trades("000660", 7, start=(10, 5)))
    metadata, _ = events(evaluate_tick_archive(NOW, first.cursor, archive(archive_env)))
    assert metadata["trade_lines"] == 17


def test_a_closed_day_is_skipped():
    saturday = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    assert isinstance(evaluate_tick_archive(saturday, None, archive()), dg.SkipReason)


def test_the_sensor_observes_the_day_of_the_project_clock(archive_env, monkeypatch):
    write_day(archive_env, "kis-1", session_trades("005930", 30, start=(10, 0)))
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(NOW))
    context = dg.build_sensor_context(resources={"archive": ArchiveResource(archive_dir=str(archive_env))})
    result = tick_archive_sensor(context)
    (observation,) = result.asset_events  # the verdict goes to a check run, not a runless evaluation
    assert observation.partition == DAY.isoformat() and observation.metadata["trade_lines"].value == 30
    (run,) = result.run_requests
    assert run.tags == {PARTITION_TAG: DAY.isoformat(), VERDICT_TAG: "passed"}
    monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(datetime(2026, 11, 21, 10, 0, tzinfo=SEOUL)))
    skipped = tick_archive_sensor(context)
    assert isinstance(skipped, dg.SkipReason) and skipped.skip_message == "2026-11-21 is not a KRX trading day"


def test_a_check_run_is_requested_only_when_the_verdict_changes(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 30, start=(10, 0)))
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in session_trades("005930", 10, start=(10, 0))])
    age_files(archive_env, "kis-1", 10)
    age_files(archive_env, "kiwoom-1", 300)

    def sensor_tick(cursor):
        return record_verdict_changes(evaluate_tick_archive(NOW, cursor, archive(archive_env)), cursor)

    first = sensor_tick(None)
    assert [r.tags[VERDICT_TAG] for r in first.run_requests] == ["failed"]
    assert sensor_tick(first.cursor).run_requests == []  # same verdict, same stale collectors
    age_files(archive_env, "kis-1", 300)  # a second collector goes quiet: still failed, new verdict
    second = sensor_tick(first.cursor)
    assert [r.tags[VERDICT_TAG] for r in second.run_requests] == ["failed"]
    yesterday = json.dumps({**json.loads(second.cursor), "day": "2026-11-19"})
    assert len(sensor_tick(yesterday).run_requests) == 1  # a new day records its first verdict
