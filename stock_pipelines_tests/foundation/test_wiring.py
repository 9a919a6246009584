"""The Dagster wiring: every table a day's runs write is an asset with its upstreams and columns,
and the resources bound in the Definitions hold no secret."""

import dagster as dg
import pytest

from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.definitions import defs
from stock_pipelines.defs.resources import BrokerResource

LAKE_TABLES = [
    "raw_ticks",
    "raw_ticks_quarantine",
    "tick_minute_bars",
    "quality_broker_day_volumes",
    "gap_report",
    "recovered_minute_bars",
    "recovery_fetched_windows",
    "minute_bars",
    "quality_broker_sample",
    "quality_broker_windows",
]


def parents(name: str) -> set[str]:
    node = defs.get_repository_def().asset_graph.get(dg.AssetKey(name))
    return {key.to_user_string() for key in node.parent_keys}


def test_the_lineage_shows_every_table_a_day_reads_or_writes():
    assert parents("raw_ticks") == parents("raw_ticks_quarantine") == {"tick_archive"}
    assert parents("tick_minute_bars") == {"raw_ticks"}
    # the broker's day volumes come before the gaps they reveal: no check writes what an asset reads
    assert parents("quality_broker_day_volumes") == {"raw_ticks", "tick_minute_bars"}
    assert parents("gap_report") == {"raw_ticks", "quality_broker_day_volumes"}
    assert parents("recovered_minute_bars") == parents("recovery_fetched_windows") == {
        "gap_report", "tick_minute_bars", "raw_ticks"
    }
    assert parents("minute_bars") == {"tick_minute_bars", "recovered_minute_bars"}
    # the broker's bar sample is fetched beside minute_bars, from what minute_bars is made of, and the
    # bar-sample check and the report read it: no check writes what the report reads
    assert parents("quality_broker_sample") == parents("quality_broker_windows") == {
        "raw_ticks", "tick_minute_bars", "recovered_minute_bars"
    }
    # the trade tier comes after the bars; the report's trade level judges its trades
    assert parents("recovered_trades") == parents("recovered_trades_windows") == {
        "raw_ticks", "gap_report", "recovered_minute_bars"
    }
    assert parents("quality_report") == {
        "minute_bars", "recovered_trades", "quality_broker_sample", "quality_broker_windows"
    }
    graph = defs.get_repository_def().asset_graph
    for check, table in (("minute_bars_day_volume", "quality_broker_day_volumes"),
                         ("minute_bars_match_broker", "quality_broker_sample"),
                         ("minute_bars_match_broker", "quality_broker_windows")):
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey("minute_bars"), check))
        assert dg.AssetKey(table) in {dep.asset_key for dep in spec.additional_deps}, (check, table)


def test_every_lake_table_has_its_columns_kinds_and_owner():
    graph = defs.get_repository_def().asset_graph
    for name in LAKE_TABLES:
        node = graph.get(dg.AssetKey(name))
        columns = [c.name for c in node.metadata["dagster/column_schema"].columns]
        assert columns and "parquet" in node.kinds and node.owners == ["team:market-data"], name
    bars = graph.get(dg.AssetKey("minute_bars")).metadata["dagster/column_schema"]
    assert [c.name for c in bars.columns] == [
        "symbol", "minute", "open", "high", "low", "close", "volume", "trades", "source"
    ]


def test_broker_credentials_come_from_the_environment_when_a_client_is_built(monkeypatch):
    bound = defs.get_repository_def().get_top_level_resources()["broker"].config_schema.default_value
    assert bound["app_key"] is None and bound["app_secret"] is None  # nothing secret in the Definitions
    monkeypatch.setenv("KIS_APP_KEY", "key-from-env")
    monkeypatch.setenv("KIS_APP_SECRET", "secret-from-env")
    monkeypatch.setenv("STOCK_PIPELINES_BROKER", "kis")
    credentials = BrokerResource().credentials()
    assert (credentials.app_key, credentials.app_secret) == ("key-from-env", "secret-from-env")
    assert "secret-from-env" not in repr(credentials)
    monkeypatch.delenv("KIS_APP_SECRET")
    with pytest.raises(BrokerAuthError, match="set KIS_APP_SECRET"):
        BrokerResource().credentials()
    assert BrokerResource(app_key="k", app_secret="s").credentials().app_secret == "s"
