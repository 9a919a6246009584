"""The broker bar sample as quality_broker_sample stores it and as the bar-sample check and the
report judge it: the broker is asked once, the judgement is made from the lake (no Dagster, no
servers; a hand-made broker stands in)."""

from datetime import UTC, datetime, timedelta

import polars as pl

from stock_pipelines import lake
from stock_pipelines.brokers.model import BarFetch, BrokerError
from stock_pipelines.quality.measures import NOT_SAMPLED, stored_broker_check
from stock_pipelines.quality.day import DayInputs
from stock_pipelines.quality.sample import WINDOW_SCHEMA, take_sample
from stock_pipelines.quality.store import (
    LEGACY_DISAGREEMENTS,
    SAMPLE_ASSET,
    WINDOWS_ASSET,
    read_broker_sample,
    report_dir,
    write_broker_sample,
)
from stock_pipelines_tests.quality.test_measures import DAY, SESSION, at, bars

AFTER_THE_DAY = datetime(2026, 11, 23, 9, 0, tzinfo=at("09:00").tzinfo)  # DAY is a past day for the broker
TICKS = pl.DataFrame({"symbol": ["005930", "000660"], "qty": [100, 10]})
# the page of the session the most active symbol's window covers on DAY (quality.sample: 120-bar
# pages of a past day, rotating with the day's ordinal)
PAGE = at("09:00") + timedelta(minutes=120 * (DAY.toordinal() % 4))
FIRST, SECOND = f"{PAGE:%H:%M}", f"{PAGE + timedelta(minutes=1):%H:%M}"


class Broker:
    """Answers every window with the bars of `truth` inside it, one call a window; `refuse` fails
    the windows of that symbol."""

    name = "fake"

    def __init__(self, truth: pl.DataFrame, refuse: str = "") -> None:
        self.truth, self.refuse, self.asked = truth, refuse, []

    def minute_bars(self, symbol, day, start, end) -> BarFetch:
        self.asked.append(symbol)
        if symbol == self.refuse:
            raise BrokerError("503 from the broker")
        inside = self.truth.filter(
            (pl.col("symbol") == symbol)
            & pl.col("minute").is_between(start.astimezone(UTC), end.astimezone(UTC), closed="left")
        )
        return BarFetch(inside.with_columns(source=pl.lit("rest_fake")), calls=1)


def inputs(final: pl.DataFrame) -> DayInputs:
    empty = pl.DataFrame()
    return DayInputs(DAY, SESSION, final, TICKS, empty, final.clear())


def test_the_sample_is_taken_once_and_judged_from_the_lake_against_the_final_bars(tmp_path):
    truth = bars([("005930", FIRST, 10, 11, 9, 10, 5), ("005930", SECOND, 10, 12, 10, 12, 3)])
    broker = Broker(truth, refuse="000660")
    sample = take_sample(DAY, SESSION, TICKS, truth.clear(), truth, broker, 2, AFTER_THE_DAY)
    # the most active symbol first (its answered window), the other listed as failed, not fatal
    assert broker.asked == ["005930", "000660"] and sample.sampled and sample.calls == 1
    assert sample.windows["symbol"].to_list() == ["005930"] and sample.bars.height == 2
    assert len(sample.failed) == 1 and sample.failed[0].startswith("000660 ") and "503" in sample.failed[0]
    write_broker_sample(DAY, sample, tmp_path)
    assert all(lake.partition_exists(table, DAY, tmp_path) for table in (SAMPLE_ASSET, WINDOWS_ASSET))

    # the final bars agree: passes, with what the broker was asked
    agreed = stored_broker_check(inputs(truth), tmp_path)
    assert agreed.sampled and agreed.passed and agreed.calls == 1 and agreed.failed == sample.failed
    # a final bar that differs from the stored broker bar is a disagreement, without asking again
    second = pl.col("minute") == at(SECOND).astimezone(UTC)
    altered = truth.with_columns(close=pl.when(second).then(11).otherwise("close"))
    judged = stored_broker_check(inputs(altered), tmp_path)
    assert not judged.passed
    found = judged.disagreements.select("symbol", "field", "ours", "truth").rows()
    assert found == [("005930", "close", 11, 12)]
    assert broker.asked == ["005930", "000660"]


def test_a_sample_not_taken_says_why_and_passes(tmp_path):
    final = bars([("005930", "09:00", 10, 11, 9, 10, 5)])
    assert stored_broker_check(inputs(final), tmp_path).note == NOT_SAMPLED  # the asset never ran
    off = take_sample(DAY, SESSION, TICKS, final.clear(), final, Broker(final), 0, AFTER_THE_DAY)
    assert (off.sampled, off.note) == (False, "off (STOCK_PIPELINES_QUALITY_REST_CALLS=0)")
    down = take_sample(DAY, SESSION, TICKS, final.clear(), final, None, 20, AFTER_THE_DAY, "breaker open")
    assert (down.sampled, down.note) == (False, "broker unavailable: breaker open")
    write_broker_sample(DAY, down, tmp_path)
    stored = read_broker_sample(DAY, tmp_path)
    assert stored.note == down.note and stored.windows.height == stored.bars.height == 0
    judged = stored_broker_check(inputs(final), tmp_path)
    assert (judged.sampled, judged.passed, judged.note) == (False, True, "broker unavailable: breaker open")


def test_a_day_whose_check_stored_its_own_comparison_is_still_read(tmp_path):
    """Days sampled before the sample was an asset: the disagreements the check stored stand."""
    window = pl.DataFrame(
        {"symbol": ["005930"], "start": [at("09:00")], "end": [at("09:02")], "reason": ["active"]}
    ).with_columns(pl.col("start", "end").dt.convert_time_zone("UTC")).cast(WINDOW_SCHEMA)
    found = pl.DataFrame({"symbol": ["005930"], "field": ["close"], "ours": [11], "truth": [12]})
    lake.write_partition(found, LEGACY_DISAGREEMENTS, DAY, tmp_path)
    lake.write_partition(window, WINDOWS_ASSET, DAY, tmp_path)
    meta = '{"sampled": true, "note": "1 windows (0 recovered), 1 calls", "calls": 1, "failed": []}'
    report_dir(DAY, tmp_path).mkdir(parents=True, exist_ok=True)
    (report_dir(DAY, tmp_path) / "broker_sample.json").write_text(meta)
    judged = stored_broker_check(inputs(bars([("005930", "09:00", 10, 11, 9, 10, 5)])), tmp_path)
    assert judged.sampled and judged.calls == 1 and not judged.passed
    assert judged.disagreements.rows() == [("005930", "close", 11, 12)]
