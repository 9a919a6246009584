"""Done-when of the gaps/back-fill issue: a `sim day` with outages and corruptions goes through
raw_ticks -> gap_report -> recovered_minute_bars -> minute_bars and every minute bar the exchange
has is back, checked against bars built independently from the simulator's trades (truth.py),
the partly-lost minutes at each outage's edges included, at the call lower bound."""

import math
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import httpx
import polars as pl
import pytest

from stock_pipelines import lake
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops import clock
from stock_pipelines.recovery.plan import lower_bound_calls
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.soak.figures_truth import compare_bars, missing_windows
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.past_day import pin_clock_after
from stock_pipelines_tests.truth import outage_edge_minutes, truth_bars

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 11, 12
ASSETS = [raw_ticks, tick_minute_bars, gap_report, recovered_minute_bars, minute_bars]
TODAY_PAGE, PAST_DAY_PAGE = 30, 120  # KIS minute bars a call: today's endpoint, a past day's
ONE_MINUTE = timedelta(minutes=1)


def _floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def outage_minutes(outage: Outage) -> tuple[datetime, datetime]:
    """[first, end) of the minutes whose trades a planted outage touched."""
    end = _floor_minute(outage.end)
    return _floor_minute(outage.start), end + ONE_MINUTE if outage.end > end else end


def calls_for_outages(outages: list[Outage], symbols: int) -> int:
    """The fewest broker calls that bring back what the planted outages (inside the continuous
    session) removed: every symbol lost each outage's minutes, one call returns a page of them.
    The outages must lie more than a page apart, so no call can serve two of them."""
    page = TODAY_PAGE if clock.now().date() == DAY else PAST_DAY_PAGE
    spans = sorted(outage_minutes(o) for o in outages)
    assert all((later[0] - earlier[1]) / ONE_MINUTE > page for earlier, later in zip(spans, spans[1:])), spans
    return symbols * sum(math.ceil((end - start) / ONE_MINUTE / page) for start, end in spans)


def lost_bar_calls(url, before: datetime | None = None) -> int:
    """The fewest broker calls that return every bar the archive lost: the truth's bars (built from
    the exchange's trades) that tick_minute_bars lacks or has with other values, at the page of the
    project clock's day; with `before`, only the minutes before it. Computed from the truth, never
    from the plan."""
    truth = truth_bars(url)
    archived = truth.clear()
    if lake.partition_exists("tick_minute_bars", DAY):
        archived = lake.read_partition("tick_minute_bars", DAY)
    if before is not None:
        truth = truth.filter(pl.col("minute") < before.astimezone(UTC))
    absent, wrong, _extra = compare_bars(truth, archived)
    return lower_bound_calls(missing_windows(pl.concat([absent, wrong])), DAY, today=clock.now().date())


@pytest.fixture
def pipeline_env(tmp_path, monkeypatch, redis_server):
    session = krx_calendar().session(DAY)
    config = ExchangeConfig(day=DAY, seed=SEED, symbols=SYMBOLS, pinned=True,
                            start=session.close + timedelta(hours=1), credentials={"e2e-key": "e2e-secret"})
    with run_exchange(config) as url:
        monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
        pin_clock_after(monkeypatch, DAY)
        yield url, tmp_path, resources(
            redis=RedisResource(url=redis_server.url),
            broker=BrokerResource(base_url=str(url), app_key="e2e-key", app_secret="e2e-secret"),
        )


def kst(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(DAY, datetime.min.time(), SEOUL).replace(hour=hh, minute=mm, second=ss)


def at_minutes(bars: pl.DataFrame, minutes: list[datetime]) -> pl.DataFrame:
    wanted = pl.Series("minute", minutes, dtype=pl.Datetime("us", "UTC"))
    return bars.filter(pl.col("minute").is_in(wanted.implode())).sort("symbol", "minute")


def test_outages_and_corruption_are_recovered_exactly_at_the_lower_bound(pipeline_env):
    url, tmp_path, res = pipeline_env
    # Outages start and end inside a minute: the archive keeps part of those edge minutes.
    outages = [Outage(kst(10, 0, 25), kst(10, 30, 40)), Outage(kst(13, 10, 5), kst(13, 25, 50))]
    archived = write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS, outages=outages, corrupt=6)
    assert archived.trades_missing > 0

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res)
    assert result.success

    expected = truth_bars(url)
    final = lake.read_partition("minute_bars", DAY)
    got = final.select(expected.columns).sort("symbol", "minute")
    before = lake.read_partition("tick_minute_bars", DAY)
    assert before.height < expected.height  # the outages really cost bars
    edges = [m for o in outages for m in outage_edge_minutes(o.start, o.end)]
    assert len(edges) == 4
    partly_lost = at_minutes(expected, edges).join(
        at_minutes(before, edges).select(expected.columns), on=expected.columns, how="anti")
    assert set(partly_lost["minute"]) == set(edges)  # each edge minute really lost some trades
    assert at_minutes(got, edges).equals(at_minutes(expected, edges)), "an outage's edge minute is not whole"
    assert got.equals(expected), f"{got.height} bars vs {expected.height} in the exchange's truth"
    assert set(final["source"]) >= {"ticks", "rest_kis"}

    meta = result.asset_materializations_for_node("recovered_minute_bars")[0].metadata
    calls = meta["calls"].value
    assert calls == meta["calls_planned"].value
    # the bound from what the archive truly lost (the truth against its bars), not from the plan;
    # on this liquid day every symbol lost trades in both outages: 12 symbols x 2 outages, a call each
    assert calls == lost_bar_calls(url) == calls_for_outages(outages, SYMBOLS) == 24
    assert httpx.get(f"{url}/admin/stats").json()["calls"].get("kis_dailychart", 0) == calls
    assert meta["lower_bound_calls"].value == calls
    # the broker's bars stand only where the archive's bar is missing or incomplete, and only in
    # the outages' minutes or the minute either side (the crash and the restart fall in those):
    # everywhere else the archive's bar keeps its `ticks` source
    rest = final.filter(pl.col("source") == "rest_kis")
    assert rest.height >= expected.height - before.height
    ohlcv = ["symbol", "minute", "open", "high", "low", "close", "volume"]
    assert rest.join(before.select(ohlcv), on=ohlcv, how="semi").height == 0
    minute = pl.col("minute").dt.convert_time_zone("Asia/Seoul")
    near_outage = pl.lit(False)
    for outage in outages:
        first, end = outage_minutes(outage)
        near_outage = near_outage | minute.is_between(first - ONE_MINUTE, end, closed="both")
    assert rest.filter(~near_outage).height == 0, rest.filter(~near_outage)
    assert meta["windows_unrecovered"].value == 0
    stats = httpx.get(f"{url}/admin/stats").json()
    assert stats["rate_limited"] == 0
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks if c.check_name == "every_gap_recovered"] == [True]


def test_a_rerun_writes_identical_minute_bars(pipeline_env):
    url, tmp_path, res = pipeline_env
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage.parse("11:00-11:20", DAY)])
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res).success
    first = lake.read_partition("minute_bars", DAY)
    calls_before = httpx.get(f"{url}/admin/stats").json()["calls"].get("kis_dailychart", 0)
    again = dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res)
    assert again.success
    assert lake.read_partition("minute_bars", DAY).equals(first)
    # the broker's bars of the first run are final (closed minutes): reused, not fetched again
    meta = again.asset_materializations_for_node("recovered_minute_bars")[0].metadata
    assert meta["calls"].value == 0 and meta["windows_planned"].value == 0
    assert meta["windows_reused"].value > 0 and meta["rest_bars_reused"].value > 0
    assert httpx.get(f"{url}/admin/stats").json()["calls"].get("kis_dailychart", 0) == calls_before


def test_a_later_run_fetches_only_the_new_outage(pipeline_env):
    url, tmp_path, res = pipeline_env
    instance = dg.DagsterInstance.ephemeral()
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage.parse("10:00-10:20", DAY)])
    first = dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res)
    first_calls = first.asset_materializations_for_node("recovered_minute_bars")[0].metadata["calls"].value
    # the collector's archive for the day, rewritten with a second outage later in the day
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS,
                      outages=[Outage.parse("10:00-10:20", DAY), Outage.parse("14:00-14:20", DAY)])
    second = dg.materialize(ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=res)
    meta = second.asset_materializations_for_node("recovered_minute_bars")[0].metadata
    assert meta["windows_reused"].value == SYMBOLS  # the first outage, one window a symbol
    assert 0 < meta["calls"].value <= first_calls  # only the 14:00 windows
    assert meta["windows_unrecovered"].value == 0
    final = lake.read_partition("minute_bars", DAY).select(truth_bars(url).columns).sort("symbol", "minute")
    assert final.equals(truth_bars(url))
