"""The Dagster layer: raw_ticks + its checks + tick_minute_bars materialized for a partition."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.archive.checks import duplicate_trades, outside_session, schema_errors
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.checks.raw_ticks_checks import raw_ticks_checks
from stock_pipelines.defs.resources import ArchiveResource
from stock_pipelines.market import krx_calendar
from stock_pipelines_tests.dagster_resources import resources

from .conftest import DAY, session_trades, write_day

KEY = DAY.isoformat()
SESSION = krx_calendar().session(DAY)


def materialize(instance=None, selection=None, archive: ArchiveResource | None = None):
    return dg.materialize(
        [raw_ticks, tick_minute_bars, *raw_ticks_checks],
        partition_key=KEY,
        instance=instance or dg.DagsterInstance.ephemeral(),
        selection=selection,
        resources=resources(archive=archive or ArchiveResource()),
    )


def checks(result) -> dict[str, tuple[bool, str]]:
    return {e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()}


def metadata(result, node="raw_ticks") -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_day_with_duplicates_and_bad_lines_materializes_with_accounting(archive_env):
    trades = session_trades("005930", 60)
    write_day(archive_env, "kis-1", trades)
    write_day(archive_env, "kiwoom-1", [("kiwoom", *t[1:]) for t in trades[:20]])
    path = next((archive_env / "kis-1" / "trades").rglob("09_00.jsonl"))
    with path.open("ab") as handle:
        handle.write(b'[1,2]\n{"v":1,"sym":"../../x"}\n')
    result = materialize(archive=ArchiveResource(quarantine_warn_share=0.01, quarantine_error_share=0.5))
    assert result.success
    meta = metadata(result)
    assert (meta["lines_in"], meta["rows_kept"], meta["duplicates"], meta["quarantined"]) == (82, 60, 20, 2)
    assert meta["quarantined_by_reason"] == {"missing_field": 1, "not_object": 1}
    assert meta["dagster/row_count"] == 60
    ticks = lake.read_partition("raw_ticks", DAY)
    assert ticks.height == 60 and set(ticks["source"]) == {"kis"}
    quarantine = lake.read_partition("raw_ticks_quarantine", DAY)
    assert sorted(quarantine["reason"]) == ["missing_field", "not_object"]
    bars = lake.read_partition("tick_minute_bars", DAY)
    assert bars["volume"].sum() == ticks["qty"].sum() and bars.height == 30
    assert checks(result) == {
        "raw_ticks_schema": (True, "ERROR"),
        "raw_ticks_no_duplicates": (True, "ERROR"),
        "raw_ticks_in_session": (True, "ERROR"),
        "raw_ticks_quarantine_share": (False, "WARN"),  # 1 % < 2/82 < 50 %
    }


def test_rerun_writes_identical_partitions(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 30))
    assert materialize().success
    first = (
        lake.partition_path("raw_ticks", DAY).read_bytes(),
        lake.partition_path("tick_minute_bars", DAY).read_bytes(),
    )
    assert materialize().success
    second = (
        lake.partition_path("raw_ticks", DAY).read_bytes(),
        lake.partition_path("tick_minute_bars", DAY).read_bytes(),
    )
    assert first == second


def test_missing_day_is_an_empty_partition_not_a_crash(archive_env):
    result = materialize()
    assert result.success
    meta = metadata(result)
    assert (meta["files"], meta["lines_in"], meta["rows_kept"], meta["empty_partition"]) == (0, 0, 0, True)
    assert lake.read_partition("raw_ticks", DAY).height == 0
    assert lake.read_partition("tick_minute_bars", DAY).height == 0
    assert all(passed for passed, _ in checks(result).values())


def test_error_check_fails_when_the_quarantine_share_is_high(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10))
    path = next((archive_env / "kis-1" / "trades").rglob("09_00.jsonl"))
    with path.open("ab") as handle:
        handle.write(b"junk\n")
    result = materialize(archive=ArchiveResource(quarantine_error_share=0.05))
    assert result.success  # the run completes; the check reports
    assert checks(result)["raw_ticks_quarantine_share"] == (False, "ERROR")


def test_check_measurements_catch_a_tampered_partition(archive_env):
    write_day(archive_env, "kis-1", session_trades("005930", 10))
    assert materialize().success
    ticks = lake.read_partition("raw_ticks", DAY)
    assert (schema_errors(ticks)[0], duplicate_trades(ticks), outside_session(ticks, SESSION)) == (0, 0, 0)
    tampered = pl.concat([ticks, ticks.head(1)]).with_columns(
        symbol=pl.when(pl.col("line") == 2).then(pl.lit("../../x")).otherwise(pl.col("symbol")),
        ts=pl.when(pl.col("line") == 3).then(pl.col("ts") + pl.duration(hours=9)).otherwise(pl.col("ts")),
    )
    failures, message = schema_errors(tampered)
    assert failures >= 2 and "symbol" in message
    assert duplicate_trades(tampered) == 1
    assert outside_session(tampered, SESSION) == 1


def test_a_saturday_is_not_a_partition(archive_env):
    with pytest.raises(Exception, match="2026-11-21"):
        dg.materialize(
            [raw_ticks], partition_key="2026-11-21", instance=dg.DagsterInstance.ephemeral(), resources=resources()
        )
