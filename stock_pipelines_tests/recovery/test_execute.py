"""The executor's control flow (a scripted in-memory source; the real clients are tested on the simulator)."""

from datetime import date, datetime, time, timedelta

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA, BarFetch, BrokerAuthError, BrokerUnavailable
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.execute import execute_plan
from stock_pipelines.recovery.plan import FetchWindow

DAY = date(2026, 11, 20)


def window(symbol: str, rank: int) -> FetchWindow:
    start = datetime.combine(DAY, time(10), SEOUL)
    return FetchWindow(symbol, start, start + timedelta(minutes=2), 2, 1, rank)


class ScriptedSource:
    name = "scripted"

    def __init__(self, failures: dict[str, Exception]):
        self.failures = failures
        self.asked: list[str] = []

    def minute_bars(self, symbol, day, start, end):
        self.asked.append(symbol)
        if symbol in self.failures:
            raise self.failures[symbol]
        minutes = [start, start + timedelta(minutes=1)]
        bars = pl.DataFrame(
            {"symbol": [symbol] * 2, "minute": minutes, "open": [1, 1], "high": [1, 1], "low": [1, 1],
             "close": [1, 1], "volume": [5, 5], "trades": [None, None], "source": ["rest_scripted"] * 2},
        ).with_columns(pl.col("minute").dt.convert_time_zone("UTC")).cast(BAR_SCHEMA)
        return BarFetch(bars=bars, calls=1)


class CountingGate:
    def __init__(self, open_after_failures: int):
        self.failures, self.limit = 0, open_after_failures

    def allow(self):
        return self.failures < self.limit

    def on_success(self):
        self.failures = 0

    def on_failure(self, error):
        self.failures += 1


def test_every_window_recovered_when_the_broker_answers():
    plan = [window(f"00000{i}", i) for i in range(5)]
    result = execute_plan(plan, ScriptedSource({}), DAY, workers=2)
    assert result.stopped is None
    assert result.bars.height == 10 and result.calls == 5
    assert sorted(o.status for o in result.outcomes) == ["recovered"] * 5


def test_refused_credentials_stop_the_run_and_report_what_is_left():
    plan = [window("000001", 0), window("000002", 1), window("000003", 2), window("000004", 3)]
    source = ScriptedSource({"000001": BrokerAuthError("KIS token refused: EGW00103")})
    result = execute_plan(plan, source, DAY, workers=1)
    assert "refused the credentials" in result.stopped
    assert [o.status for o in result.outcomes] == ["failed", "skipped", "skipped", "skipped"]
    assert source.asked == ["000001"]


def test_an_open_breaker_stops_asking_and_the_result_is_partial():
    plan = [window(f"00000{i}", i) for i in range(1, 7)]
    failing = {s: BrokerUnavailable("HTTP 500") for s in ("000002", "000003", "000004")}
    result = execute_plan(plan, ScriptedSource(failing), DAY, gate=CountingGate(3), workers=1)
    assert result.stopped == "circuit breaker for scripted is open"
    statuses = {o.window.symbol: o.status for o in result.outcomes}
    assert statuses == {"000001": "recovered", "000002": "failed", "000003": "failed", "000004": "failed",
                        "000005": "skipped", "000006": "skipped"}
    assert result.bars["symbol"].unique().to_list() == ["000001"]
    assert len(result.unrecovered) == 5
