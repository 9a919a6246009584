"""The real KIS and Kiwoom clients against the simulated exchange over real HTTP."""

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from stock_pipelines.brokers.kis import KisClient, KisCredentials
from stock_pipelines.brokers.kiwoom import KiwoomClient, KiwoomCredentials
from stock_pipelines.brokers.model import BrokerAuthError
from stock_pipelines.market import krx_calendar
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines_tests.truth import expected_bars

pytestmark = pytest.mark.integration

DAY = krx_calendar().session(datetime(2026, 11, 20).date())


class NoLimit:
    """The clients' own limiter is tested in resilience/; here the server's limit is the subject."""

    def slot(self, timeout=None):
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory):
    # one token cache for the module, as one machine has: KIS issues one token a minute per key
    return tmp_path_factory.mktemp("tokens")


@pytest.fixture(scope="module")
def exchange():
    config = ExchangeConfig(day=DAY.day, symbols=12, seed=7, pinned=True, start=DAY.close + timedelta(hours=1),
                            credentials={"demo-key": "demo-secret", "kw-key": "kw-secret", "cache-key": "cache-secret"}, rate_limit=1000,
                            kiwoom_rate_limit=1000)
    with run_exchange(config) as url:
        yield url


def truth(exchange, symbol: str) -> pl.DataFrame:
    """The symbol's bars built by truth.py from the exchange's trades (not the bars its REST serves)."""
    day = exchange.exchange.day
    t = day.trades(symbol)
    rows = zip([symbol] * len(t.ts), t.ts.tolist(), t.px.tolist(), t.qty.tolist(), strict=True)
    return expected_bars(rows, day.session).drop("symbol")


def kis(exchange, token_dir: Path, today: datetime) -> KisClient:
    return KisClient(exchange, KisCredentials("demo-key", "demo-secret"), NoLimit(), token_dir, today=lambda: today)


def test_kis_past_day_endpoint_returns_the_whole_session_exactly(exchange, token_dir):
    client = kis(exchange, token_dir, today=DAY.close + timedelta(days=3))  # DAY is a past day
    symbol = "005930"
    fetched = client.minute_bars(symbol, DAY.day, DAY.open, DAY.close + timedelta(minutes=1))
    expected = truth(exchange, symbol)
    got = fetched.bars.select("minute", "open", "high", "low", "close", "volume")
    assert got.equals(expected), (got.height, expected.height)
    assert fetched.calls == 4  # 381 slots / 120 a page
    assert set(fetched.bars["source"]) == {"rest_kis"} and not fetched.rejected


def test_kis_today_endpoint_pages_30_at_a_time_and_drops_the_forming_bar(exchange, token_dir):
    now = DAY.open + timedelta(hours=2, minutes=30, seconds=20)  # 11:30:20: the 11:30 bar is forming
    client = kis(exchange, token_dir, today=now)
    # the exchange clock is pinned after the close: everything is final there, but the client
    # must still not ask beyond its own "now"
    fetched = client.minute_bars("005930", DAY.day, DAY.open + timedelta(hours=1), DAY.open + timedelta(hours=3))
    minutes = fetched.bars["minute"].dt.convert_time_zone("Asia/Seoul")
    assert minutes.min() == DAY.open + timedelta(hours=1)
    assert minutes.max() == DAY.open + timedelta(hours=2, minutes=29)
    assert fetched.calls == 3  # 90 one-minute slots, 30 a page: the lower bound
    expected = truth(exchange, "005930").filter(
        pl.col("minute").is_between(
            (DAY.open + timedelta(hours=1)).astimezone(UTC), (DAY.open + timedelta(hours=2, minutes=29)).astimezone(UTC)
        )
    )
    assert fetched.bars.select(expected.columns).equals(expected)


def test_kis_token_is_issued_once_and_shared_through_the_cache(exchange, tmp_path):
    # a fresh cache directory: the first client issues, the other two reuse its token
    before = httpx.get(f"{exchange}/admin/stats").json()
    now = DAY.close + timedelta(days=3)
    for _ in range(3):  # three clients, as three worker processes would be
        client = KisClient(exchange, KisCredentials("cache-key", "cache-secret"), NoLimit(), tmp_path, today=lambda: now)
        client.minute_bars("000660", DAY.day, DAY.open, DAY.open + timedelta(minutes=5))
    after = httpx.get(f"{exchange}/admin/stats").json()
    issued = after["tokens_issued"] - before["tokens_issued"]
    assert issued == 1


def test_kis_wrong_credentials_are_an_auth_error_not_a_retry_loop(exchange, tmp_path):
    client = KisClient(exchange, KisCredentials("demo-key", "wrong"), NoLimit(), tmp_path / "t2",
                       today=lambda: DAY.close + timedelta(days=3))
    with pytest.raises(BrokerAuthError, match="KIS token refused"):
        client.minute_bars("005930", DAY.day, DAY.open, DAY.close)
    assert client.calls == 0


def test_missing_credentials_name_the_variables():
    with pytest.raises(BrokerAuthError, match="set KIS_APP_KEY and KIS_APP_SECRET"):
        KisCredentials.from_env({})
    with pytest.raises(BrokerAuthError, match="set KIS_APP_SECRET in"):
        KisCredentials.from_env({"KIS_APP_KEY": "k", "KIS_APP_SECRET": None})


def test_kiwoom_minute_chart_matches_the_ground_truth(exchange, tmp_path):
    client = KiwoomClient(exchange, KiwoomCredentials("kw-key", "kw-secret"), NoLimit(), tmp_path / "kw",
                          today=lambda: DAY.close + timedelta(days=3))
    start, end = DAY.open + timedelta(hours=4), DAY.close + timedelta(minutes=1)
    fetched = client.minute_bars("000660", DAY.day, start, end)
    expected = truth(exchange, "000660").filter(pl.col("minute") >= start.astimezone(UTC))
    assert fetched.bars.select(expected.columns).equals(expected)
    assert fetched.calls >= 1


def test_kis_day_volume_is_the_exchanges_day_total(exchange, token_dir):
    from stock_pipelines.brokers.model import DayVolumeSource
    from stock_pipelines.sim.day import symbol_history_day

    client = kis(exchange, token_dir, today=DAY.close + timedelta(days=3))
    assert isinstance(client, DayVolumeSource)
    day = exchange.exchange.day
    assert client.day_volume("005930", DAY.day) == int(day.trades("005930").cum[-1])
    previous = krx_calendar().previous_trading_day(DAY.day)
    history = symbol_history_day(previous, 7, "000660", day.symbol_index("000660"))
    assert client.day_volume("000660", previous) == int(history.qty.sum())
    assert client.day_volume("005930", DAY.day + timedelta(days=1)) is None  # the broker reports no such day
    assert not isinstance(KiwoomClient.__new__(KiwoomClient), DayVolumeSource)  # ka10081 not implemented
