"""The KIS and Kiwoom trade-history clients against the simulated exchange over real HTTP: the
trades they return are exactly the ones the exchange streamed, at the endpoints' page costs."""

import math
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest

from stock_pipelines.brokers.kis import KisClient, KisCredentials
from stock_pipelines.brokers.kiwoom import KiwoomClient, KiwoomCredentials
from stock_pipelines.brokers.model import BrokerError
from stock_pipelines.brokers.trades import TRADE_SCHEMA, trade_history
from stock_pipelines.market import krx_calendar
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines_tests.brokers.test_clients_on_simulator import NoLimit, token_dir  # noqa: F401 - token_dir is a fixture

pytestmark = pytest.mark.integration

DAY = krx_calendar().session(datetime(2026, 11, 20).date())
AFTER_CLOSE = DAY.close + timedelta(hours=1)


@pytest.fixture(scope="module")
def exchange():
    config = ExchangeConfig(day=DAY.day, symbols=6, seed=11, pinned=True, start=AFTER_CLOSE,
                            rate_limit=1000, kiwoom_rate_limit=1000)
    with run_exchange(config) as url:
        yield url


def truth(exchange, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
    t = exchange.exchange.day.trades(symbol)
    ts = t.ts.astype(np.int64)
    keep = (ts >= int(start.timestamp() * 1e6)) & (ts < int(end.timestamp() * 1e6))
    return pl.DataFrame({
        "ts": pl.Series(ts[keep]).cast(pl.Datetime("us", "UTC")),
        "price": t.px[keep], "qty": t.qty[keep], "cum": t.cum[keep],
    }).cast({"price": pl.Int64, "qty": pl.Int64, "cum": pl.Int64})


def calls_at_exchange(exchange, endpoint: str) -> int:
    return httpx.get(f"{exchange}/admin/stats").json()["calls"].get(endpoint, 0)


def test_kis_trades_of_a_window_are_the_streamed_trades_at_30_a_call(exchange, token_dir):
    client = KisClient(exchange, KisCredentials("k", "s"), NoLimit(), token_dir, today=lambda: AFTER_CLOSE)
    source = trade_history(client)
    start, end = DAY.open + timedelta(hours=1), DAY.open + timedelta(hours=1, minutes=20)
    before = calls_at_exchange(exchange, "kis_trades")
    fetched = source.trades("005930", DAY.day, start, end)
    expected = truth(exchange, "005930", start, end)
    assert expected.height > 60  # several pages
    assert fetched.trades.select("ts", "price", "qty", "cum").equals(expected)
    assert fetched.trades.schema == pl.Schema(TRADE_SCHEMA)
    assert set(fetched.trades["source"]) == {"rest_kis"} and not fetched.rejected
    # pages overlap at their boundary second: at least the page count, a few calls over it at most
    assert math.ceil(expected.height / 30) <= fetched.calls <= math.ceil(expected.height / 30) * 1.5 + 1
    assert calls_at_exchange(exchange, "kis_trades") - before == fetched.calls == source.calls


def test_kis_trades_of_another_day_are_refused_with_the_reason(exchange, token_dir):
    client = KisClient(exchange, KisCredentials("k", "s"), NoLimit(), token_dir,
                       today=lambda: AFTER_CLOSE + timedelta(days=3))
    with pytest.raises(BrokerError, match="today's trades only"):
        trade_history(client).trades("005930", DAY.day, DAY.open, DAY.close)


def test_kiwoom_ticks_are_numbered_by_cum_from_the_days_first_trade(exchange, token_dir):
    client = KiwoomClient(exchange, KiwoomCredentials("kw", "s"), NoLimit(), token_dir, today=lambda: AFTER_CLOSE)
    source = trade_history(client)
    symbol = exchange.exchange.day.codes[3]
    start, end = DAY.open + timedelta(hours=2), DAY.open + timedelta(hours=3)
    fetched = source.trades(symbol, DAY.day, start, end)
    expected = truth(exchange, symbol, start, end)
    assert expected.height > 0
    assert fetched.trades.select("ts", "price", "qty", "cum").equals(expected)
    assert set(fetched.trades["source"]) == {"rest_kiwoom"} and not fetched.rejected
    # the whole day back from now, 900 a call, and the page that shows the previous day
    day_trades = len(exchange.exchange.day.trades(symbol).ts)
    assert fetched.calls == day_trades // 900 + 1


def test_kiwoom_tick_pages_continue_without_loss_or_overlap(exchange):
    """The raw endpoint: next-key pages cover the day's trades once each, newest first."""
    body = {"grant_type": "client_credentials", "appkey": "kw2", "secretkey": "s"}
    token = httpx.post(f"{exchange}/oauth2/token", json=body).json()["token"]
    symbol = exchange.exchange.day.codes[4]  # a quieter symbol: a handful of pages
    rows, key = [], ""
    for _ in range(200):
        headers = {"authorization": f"Bearer {token}", "api-id": "ka10079", "cont-yn": "Y" if key else "N",
                   "next-key": key}
        reply = httpx.post(f"{exchange}/api/dostk/chart", headers=headers,
                           json={"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1"})
        page = reply.json()["stk_tic_chart_qry"]
        assert len(page) <= 900
        rows += [r for r in page if r["cntr_tm"].startswith(f"{DAY.day:%Y%m%d}")]
        key = reply.headers["next-key"] if reply.headers["cont-yn"] == "Y" else ""
        if not key or not page[-1]["cntr_tm"].startswith(f"{DAY.day:%Y%m%d}"):
            break
    trades = exchange.exchange.day.trades(symbol)
    assert [int(r["trde_qty"]) for r in reversed(rows)] == trades.qty.tolist()
    assert [int(r["cur_prc"]) for r in reversed(rows)] == trades.px.tolist()
