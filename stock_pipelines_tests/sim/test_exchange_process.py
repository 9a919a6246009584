"""`stock-pipelines sim exchange` as its own process: a plain httpx client fetches whole days."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from stock_pipelines.cli import main
from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.truth import expected_bars

from . import kis

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
            t = truth.trades(code)  # bars built by truth.py from the seeded trades
            bars = expected_bars(zip([code] * len(t.ts), t.ts.tolist(), t.px.tolist(), t.qty.tolist(), strict=True),
                                 truth.session)
            expected = [(m.astimezone(SEOUL).strftime("%H%M%S"), o, h, lo, c, v) for _, m, o, h, lo, c, v in bars.iter_rows()]
            assert [kis.bar_tuple(r) for r in rows] == expected
            assert calls == -(-len(expected) // 30) + (len(expected) % 30 == 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-06-03"], "2026-06-03 is not a KRX trading day"),
        (["--date", "2026-11-20", "--start", "25:99"], "--start"),
        (["--date", "2026-11-20", "--speed", "0"], "--speed"),
        (["--date", "2026-11-20", "--symbols", "0"], "--symbols"),
        (["--date", "2026-11-20", "--overnight", "sleep"], "--overnight"),
        (["--date", "2026-11-20", "--night-speed", "0"], "--night-speed"),
        (["--date", "2026-11-20", "--day-cache", "0"], "--day-cache"),
    ],
)
def test_bad_exchange_arguments_exit_2(capsys, args, message):
    assert main(["sim", "exchange", "--port", "0", *args]) == 2
    assert message in capsys.readouterr().err
