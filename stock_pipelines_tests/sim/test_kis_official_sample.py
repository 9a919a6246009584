"""The official KIS sample client (koreainvestment/open-trading-api, examples_llm), unmodified, against
the real `sim exchange` process: its three quotation calls return the simulator's truth, and its
`KISWebSocket` with `ccnl_krx` receives H0STCNT0 trades equal to the simulator's, multi-record
frames included. The sample is configured only through its kis_devlp.yaml (in a temporary HOME).

The sample's files are not in the repository (see fixtures/kis_official/README.md: no license
grants copying them). The tests are deselected by default (marker `kis_official_sample`, like
`image`): place the files at the pinned commit and run `./run test -m kis_official_sample`; asked
for without the files, they skip saying why (and so fail a CI run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from string import Template

import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.kis_protocol import hhmmss
from stock_pipelines.sim.runner import run_exchange_process
from stock_pipelines_tests.truth import expected_bars

from . import kis

pytestmark = [pytest.mark.integration, pytest.mark.kis_official_sample, pytest.mark.timeout(120)]

FIXTURE = Path(__file__).parents[1] / "fixtures" / "kis_official"
SAMPLE = FIXTURE / "sample"
DRIVER = Path(__file__).with_name("kis_official_driver.py")
# sha256 of each file at koreainvestment/open-trading-api@885dd4e2f5c37e4f7e23dd63c15555a9967bc7bc
PINNED = {
    "examples_llm/kis_auth.py": "2c23617eb9829934dc14f530cfae126426676919b630a07aa2a4832682ffdb9f",
    "examples_llm/domestic_stock/inquire_time_itemchartprice/inquire_time_itemchartprice.py":
        "6196ad02b3ffd0128380df021be72cfeaed11be38306d15c3f7e00013e5a23ae",
    "examples_llm/domestic_stock/inquire_time_dailychartprice/inquire_time_dailychartprice.py":
        "3034b9f54dfcb632139f3cc309937a2b426dfe45c84521549c6ddba58babe237",
    "examples_llm/domestic_stock/inquire_daily_itemchartprice/inquire_daily_itemchartprice.py":
        "429f45248678d60a67990da1760af5965597201a3f9b790fb27a34e1fcfb2c06",
    "examples_llm/domestic_stock/ccnl_krx/ccnl_krx.py":
        "4dac26de2605cc2e1ab5aa2bc80e1316f3912b561c204eb5279e4e8dc62a16cf",
}
DAY, SEED, SYMBOLS = date(2026, 11, 20), 9, 40


@pytest.fixture(scope="module")
def sample() -> Path:
    missing = [name for name in PINNED if not (SAMPLE / name).is_file()]
    if missing:
        pytest.skip(f"the official KIS sample is not in {SAMPLE} (missing {missing[0]}): "
                    "see stock_pipelines_tests/fixtures/kis_official/README.md")
    changed = [name for name, digest in PINNED.items()
               if hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest() != digest]
    assert not changed, f"these sample files differ from the pinned commit: {changed}"
    return SAMPLE


@pytest.fixture(scope="module")
def truth() -> SimDay:
    return SimDay(DAY, seed=SEED, symbols=SYMBOLS)


def run_sample(sample: Path, home: Path, url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The driver in a child process whose HOME holds KIS/config/kis_devlp.yaml pointing at `url`."""
    config = home / "KIS" / "config"
    config.mkdir(parents=True, exist_ok=True)
    template = Template((FIXTURE / "kis_devlp.yaml").read_text(encoding="utf-8"))
    (config / "kis_devlp.yaml").write_text(
        template.substitute(rest_url=url, ws_url="ws" + url.removeprefix("http")), encoding="utf-8")
    env = {**os.environ, "HOME": str(home)}
    result = subprocess.run([sys.executable, str(DRIVER), str(sample), *args], cwd=home, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def truth_bar_rows(truth: SimDay, code: str) -> list[tuple]:
    """The day's bars as (HHMMSS, open, high, low, close, volume), newest first."""
    t = truth.trades(code)
    bars = expected_bars(zip([code] * len(t.ts), t.ts.tolist(), t.px.tolist(), t.qty.tolist(), strict=True),
                         truth.session)
    return [(m.astimezone(SEOUL).strftime("%H%M%S"), o, h, lo, c, v) for _, m, o, h, lo, c, v in bars.iter_rows()][::-1]


def test_the_official_sample_quotation_calls_return_the_simulators_bars(sample, truth, tmp_path):
    args = ["--date", f"{DAY}", "--seed", str(SEED), "--symbols", str(SYMBOLS), "--start", "15:40", "--pin"]
    code = "005930"
    with run_exchange_process(args) as url:
        result = run_sample(sample, tmp_path, url, "rest", code, f"{DAY:%Y%m%d}", "20261118")
    replies = json.loads(result.stdout.strip().splitlines()[-1])

    expected = truth_bar_rows(truth, code)
    trades = truth.trades(code)
    for name, page in (("itemchart", 30), ("dailychart", 120)):
        rows = replies[name]["output2"]
        assert [kis.bar_tuple(r) for r in rows] == expected[:page], name
        assert {r["stck_bsop_date"] for r in rows} == {f"{DAY:%Y%m%d}"}
        summary = replies[name]["output1"][0]
        assert (int(summary["stck_prpr"]), int(summary["acml_vol"])) == (int(trades.px[-1]), int(trades.cum[-1]))

    days = [date(2026, 11, 20), date(2026, 11, 19), date(2026, 11, 18)]  # newest first; 11-19 is the CSAT day
    daily = []
    for day in days:
        t = SimDay(day, seed=SEED, symbols=SYMBOLS).trades(code)
        daily.append((f"{day:%Y%m%d}", int(t.px[0]), int(t.px.max()), int(t.px.min()), int(t.px[-1]), int(t.cum[-1])))
    assert [(r["stck_bsop_date"], int(r["stck_oprc"]), int(r["stck_hgpr"]), int(r["stck_lwpr"]), int(r["stck_clpr"]),
             int(r["acml_vol"])) for r in replies["periodchart"]["output2"]] == daily
    assert replies["periodchart"]["output1"][0]["stck_shrn_iscd"] == code


def test_the_official_sample_websocket_receives_the_simulators_trades(sample, truth, tmp_path):
    args = ["--date", f"{DAY}", "--seed", str(SEED), "--symbols", str(SYMBOLS), "--start", "10:00", "--speed", "1"]
    codes = ["005930", "000660"]  # as the sample's chk_ccnl_krx.py
    out = tmp_path / "records.jsonl"
    with run_exchange_process(args) as url:
        run_sample(sample, tmp_path, url, "ws", str(out), "40", *codes, timeout=90)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert any(line["tr_id"] == "PINGPONG" for line in lines), "the sample saw no PINGPONG"
    records = [line for line in lines if line["tr_id"] == "H0STCNT0"]
    assert len(records) >= 40
    assert max(line["frame_records"] for line in records) > 1, "no multi-record frame reached the sample"

    received: dict[str, list[int]] = {code: [] for code in codes}
    for line in records:
        record = line["record"]
        code, cum = record["MKSC_SHRN_ISCD"], int(record["ACML_VOL"])
        t = truth.trades(code)
        i = int(t.cum.searchsorted(cum))
        assert i < len(t.cum) and int(t.cum[i]) == cum, f"{code} ACML_VOL {cum} is not a trade of the day"
        assert (record["STCK_CNTG_HOUR"], int(record["STCK_PRPR"]), int(record["CNTG_VOL"]), record["BSOP_DATE"]) == (
            hhmmss(int(t.ts[i])), int(t.px[i]), int(t.qty[i]), f"{DAY:%Y%m%d}")
        received[code].append(i)
    for code, indices in received.items():
        assert indices, f"no trade of {code}"
        assert indices == list(range(indices[0], indices[-1] + 1)), f"{code}: trades missing or out of order"
