"""Done-when of the trade tier (issue 20): a simulated day with outages goes through raw_ticks ->
gap_report -> recovered_minute_bars -> recovered_trades against the simulated KIS trade history,
and the merged day (`lake.day_trades`) equals the exchange's trades exactly for every symbol the
budget covers; a rerun makes no call; the symbols over budget are named and keep their holes."""

from datetime import date, datetime, timedelta

import dagster as dg
import httpx
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.commands.demo_summary import trade_figures
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovered_trades import recovered_trades
from stock_pipelines.defs.assets.recovery import gap_report, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.dagster_resources import resources

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 11, 6
ASSETS = [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, recovered_trades]
COLUMNS = ["symbol", "ts", "price", "qty", "cum"]


@pytest.fixture
def day_env(tmp_path, monkeypatch, redis_server):
    session = krx_calendar().session(DAY)
    after_close = session.close + timedelta(hours=1)
    config = ExchangeConfig(day=DAY, seed=SEED, symbols=SYMBOLS, pinned=True, start=after_close,
                            credentials={"t-key": "t-secret"})
    with run_exchange(config) as url:
        monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
        # the evening of the day itself: KIS serves today's trades only
        monkeypatch.setenv(ENV_FAKE_NOW, fake_now_value(after_close))
        yield url, tmp_path, resources(
            redis=RedisResource(url=redis_server.url),
            broker=BrokerResource(base_url=str(url), app_key="t-key", app_secret="t-secret"),
        )


def kst(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(DAY, datetime.min.time(), SEOUL).replace(hour=hh, minute=mm, second=ss)


def exchange_trades(url) -> pl.DataFrame:
    """Every trade the exchange made on the day (its own columns, not a REST reply)."""
    day = url.exchange.day
    frames = []
    for code in day.codes:
        t = day.trades(code)
        frames.append(pl.DataFrame({"symbol": [code] * len(t.ts), "ts": t.ts, "price": t.px, "qty": t.qty,
                                    "cum": t.cum}))
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))).cast(
        {"price": pl.Int64, "qty": pl.Int64, "cum": pl.Int64}).sort("symbol", "cum")


def kis_trade_calls(url) -> int:
    return httpx.get(f"{url}/admin/stats").json()["calls"].get("kis_trades", 0)


def materialize(instance, res, budget: int, selection=None):
    config = {"ops": {"recovered_trades": {"config": {"daily_call_budget": budget}}}}
    result = dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res,
                            run_config=config, selection=selection)
    assert result.success
    return result, result.asset_materializations_for_node("recovered_trades")[0].metadata


def test_outages_are_recovered_to_the_exact_trades_and_a_rerun_makes_no_call(day_env):
    url, tmp_path, res = day_env
    outages = [Outage(kst(10, 0, 25), kst(10, 12, 40)), Outage(kst(15, 21, 5), kst(15, 30, 0))]  # one to the close
    archived = write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS, outages=outages, corrupt=4)
    assert archived.trades_missing > 0
    truth = exchange_trades(url)
    instance = dg.DagsterInstance.ephemeral()

    _, meta = materialize(instance, res, budget=10_000)
    before = lake.read_partition("raw_ticks", DAY)
    assert before.height < truth.height  # the outages and the corrupted lines really cost trades
    merged = lake.day_trades(None, DAY)
    assert merged.select(COLUMNS).equals(truth), (merged.height, truth.height)
    assert merged.select("symbol", "cum").is_duplicated().sum() == 0
    recovered = merged.filter(pl.col("source") == "rest_kis")
    assert recovered.height == truth.height - before.height == meta["trades_recovered"].value
    # every archived trade kept its own source: the broker's rows only fill holes
    assert merged.filter(pl.col("source") != "rest_kis").select(COLUMNS).equals(before.select(COLUMNS).sort("symbol", "cum"))
    calls = meta["calls"].value
    assert calls == kis_trade_calls(url) > 0
    assert meta["lower_bound_calls"].value <= calls <= 2 * meta["lower_bound_calls"].value + 2 * SYMBOLS
    assert meta["symbols_left_at_bar_level_count"].value == 0
    # the demo's closing figures, from the same lake against the exchange's own trades
    assert trade_figures(DAY, url.exchange.day) == {
        "trades_expected": truth.height, "trades_before": before.height, "trades_after": truth.height}
    # the shared limiter keeps the pace; a call the exchange still refused was retried, not lost
    rejected = httpx.get(f"{url}/admin/stats").json()["rate_limited"]
    assert rejected == meta["retries"].value.get("BrokerRateLimited", 0) <= calls // 20

    # the trade tier again, on the same inputs (the lake's raw_ticks and gap_report)
    _, again = materialize(instance, res, budget=10_000, selection=[recovered_trades])
    assert again["calls"].value == 0
    assert kis_trade_calls(url) == calls  # nothing asked again
    assert again["windows_fetched_before"].value > 0
    assert lake.day_trades(None, DAY).equals(merged)


def test_symbols_over_the_budget_are_named_and_the_rest_is_exact(day_env):
    url, tmp_path, res = day_env
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage(kst(11, 0, 10), kst(11, 20, 30))])
    truth = exchange_trades(url)
    instance = dg.DagsterInstance.ephemeral()
    _, meta = materialize(instance, res, budget=40)
    over = set(meta["symbols_left_at_bar_level"].value)
    assert 0 < len(over) < SYMBOLS
    assert meta["calls"].value <= 40
    merged = lake.day_trades(None, DAY)
    covered = sorted(set(truth["symbol"]) - over)
    assert merged.filter(pl.col("symbol").is_in(covered)).select(COLUMNS).equals(
        truth.filter(pl.col("symbol").is_in(covered)))
    # the named symbols keep their holes (no broker rows for them)
    for symbol in over:
        assert merged.filter(pl.col("symbol") == symbol).height < truth.filter(pl.col("symbol") == symbol).height
        assert merged.filter((pl.col("symbol") == symbol) & (pl.col("source") == "rest_kis")).height == 0
    # the most active symbols (by the archive's volume) come first: all ahead of a named one are covered
    archived = lake.read_partition("raw_ticks", DAY)
    volume = dict(archived.group_by("symbol").agg(pl.col("qty").sum()).iter_rows())
    busiest_named = max(volume[s] for s in over)
    assert all(s in covered for s, v in volume.items() if v > busiest_named)
