"""Trade completeness on a simulated day whose archive lost trades at the start, in the middle and
at the end of the day (the closing print too), against the simulator's own trades: the check
WARNs without blocking the bars' certification, names exactly the symbols the truth says are
below 99.99%, and measures each symbol's missing volume as the truth's."""

import json
from collections import defaultdict
from datetime import date, datetime, time, timedelta

import dagster as dg
import polars as pl
import pytest

from stock_pipelines.atomic_files import write_text
from stock_pipelines.cli import main
from stock_pipelines.defs.assets.day_volumes import broker_day_volumes
from stock_pipelines.defs.assets.quality_report import quality_report
from stock_pipelines.defs.assets.raw_ticks import raw_ticks
from stock_pipelines.defs.assets.recovered_trades import recovered_trades
from stock_pipelines.defs.assets.recovery import gap_report, minute_bars, recovered_minute_bars
from stock_pipelines.defs.assets.tick_minute_bars import tick_minute_bars
from stock_pipelines.defs.checks.trade_completeness import trade_completeness_check
from stock_pipelines.defs.resources import BrokerResource, RedisResource
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.quality.store import read_summary, report_dir
from stock_pipelines.sim.archive_day import write_day_archive
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.conftest import RedisServer
from stock_pipelines_tests.dagster_resources import resources
from stock_pipelines_tests.past_day import pin_clock_after
from stock_pipelines_tests.truth import sim_trades

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DAY = date(2026, 11, 20)
SEED, SYMBOLS = 23, 8
KEY, SECRET = "tc-key", "tc-secret"
# the day's pipeline: the check judges the archive with the trade tier's trades (none here: the
# day is past and KIS serves only today's trades), and its WARN must stop none of it
PIPELINE = [
    raw_ticks, tick_minute_bars, broker_day_volumes, gap_report, recovered_minute_bars, minute_bars,
    recovered_trades, quality_report, trade_completeness_check,
]


def seoul(hhmm: str) -> int:
    """Epoch microseconds of HH:MM Seoul time on DAY."""
    at = datetime.combine(DAY, time.fromisoformat(hhmm), SEOUL)
    return int(at.timestamp()) * 1_000_000


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    session = krx_calendar().session(DAY)
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    config = ExchangeConfig(
        day=DAY, seed=SEED, symbols=SYMBOLS, pinned=True, start=session.close + timedelta(hours=1),
        credentials={KEY: SECRET},
    )
    try:
        with run_exchange(config) as url:
            yield url, redis
    finally:
        redis.stop()


def cut_from_archive(archive, cuts: dict[str, tuple[int, int]]) -> None:
    """Remove each symbol's trades executed in [start, end) µs from the archive's trade files."""
    for path in sorted(archive.rglob("*.jsonl")):
        lines = path.read_text().splitlines(keepends=True)
        kept = []
        for line in lines:
            record = json.loads(line)
            window = cuts.get(record.get("sym"))
            if window is None or not window[0] <= record["ts"] < window[1]:
                kept.append(line)
        if len(kept) != len(lines):
            write_text(path, "".join(kept))


def archived_cums(archive) -> set[tuple[str, int]]:
    """(symbol, cum) of every trade line left in the archive, read from the JSONL files."""
    found = set()
    for path in archive.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "cum" in record:
                found.add((record["sym"], record["cum"]))
    return found


def truth_missing(sim, archived: set[tuple[str, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """Per symbol, from the simulator's trade list: the shares of the trades absent from the
    archive, and the day's volume (the sum of every trade's quantity)."""
    missing, volume = defaultdict(int), defaultdict(int)
    cum = defaultdict(int)
    for symbol, _ts, _px, qty in sim_trades(sim):
        cum[symbol] += qty
        volume[symbol] += qty
        if (symbol, cum[symbol]) not in archived:
            missing[symbol] += qty
    return dict(missing), dict(volume)


def test_lost_trades_warn_name_the_symbols_and_measure_the_truths_missing_volume(
    exchange, tmp_path, monkeypatch, capsys
):
    url, redis = exchange
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("REDIS_URL", redis.url)
    monkeypatch.setenv("STOCK_PIPELINES_REDIS_PREFIX", tmp_path.name)
    pin_clock_after(monkeypatch, DAY)
    sim = url.exchange.day
    codes = sim.codes
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS)
    # the opening minutes (the opening print too), a stretch of the morning, and the last half
    # hour with the closing print: that tail is visible only against the broker's day total
    cut_from_archive(
        tmp_path / "archive",
        {
            codes[0]: (seoul("09:00"), seoul("09:05")),
            codes[1]: (seoul("11:00"), seoul("11:20")),
            codes[2]: (seoul("15:00"), seoul("15:31")),
        },
    )
    missing, volume = truth_missing(sim, archived_cums(tmp_path / "archive"))
    assert set(missing) == set(codes[:3])  # the cuts took trades from those three, no other
    below_truth = {s for s in volume if (volume[s] - missing.get(s, 0)) / volume[s] < 0.9999}

    res = resources(
        redis=RedisResource(url=redis.url),
        broker=BrokerResource(broker="kis", base_url=str(url), app_key=KEY, app_secret=SECRET),
    )
    result = dg.materialize(PIPELINE, partition_key=DAY.isoformat(), instance=dg.DagsterInstance.ephemeral(), resources=res)
    assert result.success  # a WARN blocks nothing
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "trade_completeness")
    assert evaluation.asset_key == dg.AssetKey("recovered_trades") and evaluation.partition == DAY.isoformat()
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert set(meta["symbols_below"]) == below_truth and below_truth
    for symbol, share in meta["symbols_below"].items():
        assert share == pytest.approx((volume[symbol] - missing[symbol]) / volume[symbol])
    assert meta["missing_volume"] == sum(missing.values())
    assert meta["overall_share"] == pytest.approx(1 - sum(missing.values()) / sum(volume.values()))
    assert sorted(meta["symbols_complete_list"]) == sorted(set(volume) - set(missing))
    assert meta["symbols_unproven"] == [] and meta["symbol_problems"] == {}
    assert evaluation.description.startswith("not complete at trade level")

    report = result.asset_materializations_for_node("quality_report")[0].metadata
    assert report["certified"].value is True  # the bars were recovered: certified at bar level
    left = {r.data["symbol"]: r.data for r in report["trade_level"].value.records}
    assert set(left) == set(missing)
    assert {s: row["missing_volume"] for s, row in left.items()} == missing
    assert left[codes[2]]["day_volume_from"] == "broker"  # its closing print was lost
    summary = read_summary(DAY)["trade_level"]
    assert summary["day_complete"] is False and set(summary["bar_level_symbols"]) == set(missing)
    page = (report_dir(DAY) / "report.html").read_text()
    table = page.split("<h2>Trade level: symbols left at bar level</h2>")[1].split("<h2>")[0]
    assert all(f"<td>{code}</td>" in table for code in missing) and table.count("<tr>") == len(missing) + 1

    assert main(["report", DAY.isoformat()]) == 0
    printed = capsys.readouterr().out
    assert "trade level: not complete at trade level" in printed
    assert f"symbols left at bar level: {len(missing)} (" in printed
    assert all(code in printed.split("symbols left at bar level")[1] for code in missing)


def test_a_whole_day_is_complete_at_trade_level(exchange, tmp_path, monkeypatch):
    """The same day with nothing lost: the check passes on the closing prints and the broker's totals."""
    url, redis = exchange
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(tmp_path / "archive"))
    pin_clock_after(monkeypatch, DAY)
    write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS)
    result = dg.materialize(
        [raw_ticks, tick_minute_bars, gap_report, recovered_trades, trade_completeness_check], partition_key=DAY.isoformat(),
        instance=dg.DagsterInstance.ephemeral(), resources=resources(),
    )
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "trade_completeness")
    assert evaluation.passed is True
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    trades = pl.DataFrame(list(sim_trades(url.exchange.day)), schema=["symbol", "ts", "px", "qty"], orient="row")
    assert meta["trades_present"] == trades.height and meta["overall_share"] == 1.0
    assert meta["symbols_complete"] == SYMBOLS and meta["missing_volume"] == 0
    assert meta["broker_day_volumes"] == "quality_broker_day_volumes has not run for this day"


def test_the_end_of_day_job_runs_it_and_it_never_blocks():
    from stock_pipelines.definitions import defs

    key = dg.AssetCheckKey(dg.AssetKey("recovered_trades"), "trade_completeness")
    end_of_day = defs.resolve_job_def("end_of_day_job").asset_layer.asset_graph
    assert key in end_of_day.asset_check_keys
    assert end_of_day.get(key).blocking is False
    recovery = defs.resolve_job_def("recovery_job").asset_layer.asset_graph
    assert key not in recovery.asset_check_keys  # mid-session the day's trades cannot be complete yet
