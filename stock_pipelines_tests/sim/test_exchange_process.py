"""`stock-pipelines sim exchange` as its own process: a plain httpx client fetches whole days."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import pytest

from stock_pipelines.cli import main
from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process

from . import kis

US = 1_000_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_a_plain_httpx_client_fetches_whole_days_that_match_the_seeded_truth():
    args = ["--date", "2026-11-20", "--seed", "9", "--symbols", "40", "--start", "15:40", "--pin"]
    truth = SimDay(date(2026, 11, 20), seed=9, symbols=40)
    with run_exchange_process(args) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert url.startswith("http://127.0.0.1:")
        info = client.get("/admin/info").json()
        assert info["date"] == "2026-11-20" and info["trades"] == len(truth) and info["symbols"] == truth.codes
        token = kis.token(client).json()["access_token"]
        for code in ("005930", "000660", truth.codes[-1]):
            rows, calls = kis.page_back_today(client, token, code)
            bars = truth.minute_bars(code)
            expected = [
                (datetime.fromtimestamp(int(s) // US, SEOUL).strftime("%H%M%S"), int(o), int(h), int(lo), int(c), int(v))
                for s, o, h, lo, c, v in zip(bars.start, bars.open, bars.high, bars.low, bars.close, bars.volume,
                                             strict=True)
            ]
            assert [kis.bar_tuple(r) for r in rows] == expected
            assert calls == -(-len(expected) // 30) + (len(expected) % 30 == 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-06-03"], "2026-06-03 is not a KRX trading day"),
        (["--date", "2026-11-20", "--start", "25:99"], "--start"),
        (["--date", "2026-11-20", "--speed", "0"], "--speed"),
        (["--date", "2026-11-20", "--symbols", "0"], "--symbols"),
    ],
)
def test_bad_exchange_arguments_exit_2(capsys, args, message):
    assert main(["sim", "exchange", "--port", "0", *args]) == 2
    assert message in capsys.readouterr().err
