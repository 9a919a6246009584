"""Whether the recovery answered every gap window, read from the instance for one partition."""

import dagster as dg

from stock_pipelines.defs.checks.day_inputs import recovery_complete

DAY = "2026-11-20"


def report(instance, asset: str, partition: str = DAY, **metadata) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=asset, partition=partition, metadata=metadata)
    )


def test_recovery_verdict_follows_the_latest_materializations():
    with dg.DagsterInstance.ephemeral() as instance:
        assert recovery_complete(instance, DAY) is False  # never recovered: gap minutes stay expected
        report(instance, "gap_report")
        report(instance, "recovered_minute_bars", windows_unrecovered=0)
        assert recovery_complete(instance, DAY) is True
        report(instance, "recovered_minute_bars", partition="2026-11-19", windows_unrecovered=3)
        assert recovery_complete(instance, DAY) is True  # another day's partition does not count
        report(instance, "gap_report")  # newer gaps the recovery has not seen
        assert recovery_complete(instance, DAY) is False
        report(instance, "recovered_minute_bars", windows_unrecovered=2)
        assert recovery_complete(instance, DAY) is False
        report(instance, "recovered_minute_bars", windows_unrecovered=0)
        assert recovery_complete(instance, DAY) is True
