"""KIS H0STCNT0 WebSocket through a real connection: control replies, frames, and agreement of
the streamed ticks with the REST minute bars at the same simulated instant."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timedelta

import httpx
import pytest
import websockets

from stock_pipelines.collector.frames import parse_frame
from stock_pipelines.market import SEOUL
from stock_pipelines.sim.kis_protocol import H0STCNT0_FIELDS
from stock_pipelines.sim.runner import run_exchange

from . import kis

DAY = date(2026, 11, 20)
OPEN = datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL)
US = 1_000_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _collect(ws, quiet_s: float = 0.6, limit_s: float = 10.0) -> tuple[list[list[str]], list[str]]:
    """Read until the feed is quiet (PINGPONG, which never stops, does not count as traffic):
    (trade records as field lists, control messages)."""
    records, controls = [], []
    deadline = time.monotonic() + limit_s
    last_traffic = time.monotonic()
    while time.monotonic() < deadline:
        quiet_left = quiet_s - (time.monotonic() - last_traffic)
        if quiet_left <= 0:
            break
        try:
            message = await asyncio.wait_for(ws.recv(), quiet_left)
        except TimeoutError:
            break
        if message[0] in "01":
            _, tr_id, count, payload = message.split("|", 3)
            fields = payload.split("^")
            assert tr_id == "H0STCNT0" and len(fields) == 46 * int(count)
            records += [fields[i * 46:(i + 1) * 46] for i in range(int(count))]
            last_traffic = time.monotonic()
        else:
            controls.append(message)
            if json.loads(message)["header"]["tr_id"] == "PINGPONG":
                await ws.send(message)  # clients echo PINGPONG
            else:
                last_traffic = time.monotonic()
    return records, controls


def test_streamed_ticks_are_the_days_trades_and_rebuild_the_rest_bars():
    symbols = ["005930", "000660", "SIM"]
    with run_exchange(day=DAY, seed=3, symbols=40, start=OPEN - timedelta(seconds=2), pinned=True, speed=150,
                      ping_interval_s=0.5) as url, httpx.Client(base_url=url, timeout=10) as client:
        day = url.exchange.day
        symbols[2] = day.codes[-1]
        approval = kis.approval(client)
        token = kis.token(client).json()["access_token"]

        async def run() -> tuple[list[list[str]], list[str], int]:
            async with websockets.connect(url.ws_url) as ws:
                for code in symbols:
                    await ws.send(kis.subscribe(approval, code))
                    reply = json.loads(await ws.recv())
                    assert reply["body"]["msg_cd"] == "OPSP0000" and reply["header"]["tr_key"] == code
                client.post("/admin/clock", json={"pinned": False}).raise_for_status()
                await asyncio.sleep(2.0)  # about five simulated minutes
                now = client.post("/admin/clock", json={"pinned": True}).json()["now"]
                records, controls = await _collect(ws)
                return records, controls, int(datetime.fromisoformat(now).timestamp() * US)

        records, controls, now_us = asyncio.run(run())
        assert any('"PINGPONG"' in c for c in controls)
        assert client.get("/admin/stats").json()["ws_pingpong_echoes"] >= 1

        for code in symbols:
            mine = [r for r in records if r[0] == code]
            truth = day.trades(code, until_us=now_us)
            # every trade up to the pinned instant, once, in order, with the exchange's cum and price
            assert [(int(r[13]), int(r[2]), int(r[12])) for r in mine] == list(
                zip(truth.cum.tolist(), truth.px.tolist(), truth.qty.tolist(), strict=True))
            assert mine[0][1] == "090000" and mine[0][33] == "20261120"

            bars: dict[str, list[int]] = {}
            for r in mine:
                minute, px, qty = r[1][:4] + "00", int(r[2]), int(r[12])
                bar = bars.setdefault(minute, [px, px, px, px, 0])
                bar[1], bar[2], bar[3], bar[4] = max(bar[1], px), min(bar[2], px), px, bar[4] + qty
            from_ticks = [(m, o, h, lo, c, v) for m, (o, h, lo, c, v) in sorted(bars.items())]
            rest = kis.itemchart(client, token, code, "153000").json()["output2"]
            assert [kis.bar_tuple(row) for row in rest[::-1]] == from_ticks


def test_record_fields_are_consistent():
    with run_exchange(day=DAY, seed=3, symbols=5, start=OPEN - timedelta(seconds=1), speed=60) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)

        async def run():
            async with websockets.connect(url.ws_url) as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                await ws.recv()
                return (await _collect(ws, quiet_s=1.5, limit_s=1.5))[0]

        records = asyncio.run(run())
    assert len(records) > 10
    named = [dict(zip(H0STCNT0_FIELDS, r, strict=True)) for r in records]
    prev_close = int(named[0]["STCK_PRPR"]) - int(named[0]["PRDY_VRSS"])
    for rec in named:
        px = int(rec["STCK_PRPR"])
        assert int(rec["STCK_LWPR"]) <= px <= int(rec["STCK_HGPR"])
        assert int(rec["PRDY_VRSS"]) == px - prev_close
        assert rec["PRDY_VRSS_SIGN"] == ("2" if px > prev_close else "5" if px < prev_close else "3")
        assert int(rec["SELN_CNTG_SMTN"]) + int(rec["SHNU_CNTG_SMTN"]) == int(rec["ACML_VOL"])
        assert rec["CCLD_DVSN"] in ("1", "5") and rec["MKSC_SHRN_ISCD"] == "005930"
    cums = [int(r["ACML_VOL"]) for r in named]
    assert all(b - a == int(r["CNTG_VOL"]) for a, b, r in zip(cums, cums[1:], named[1:], strict=False))


def test_subscription_control_messages():
    with run_exchange(day=DAY, seed=3, symbols=10, max_subscriptions=3) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)

        async def run() -> list[tuple[str, str]]:
            async with websockets.connect(url.ws_url) as ws:
                sent = [kis.subscribe(approval, c) for c in ("005930", "000660", "005930", "373220", "207940")]
                sent += [kis.subscribe(approval, "000660", "2"), kis.subscribe(approval, "000660", "2"),
                         kis.subscribe("wrong-key", "005380"), "{not json"]
                replies = []
                for message in sent:
                    await ws.send(message)
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply["header"]["tr_id"] != "PINGPONG":
                            break
                    replies.append((reply["body"]["msg_cd"], reply["body"]["msg1"]))
                return replies

        codes = [code for code, _ in asyncio.run(run())]
    assert codes == ["OPSP0000", "OPSP0000", "OPSP0002", "OPSP0000", "OPSP0008", "OPSP0001", "OPSP0003",
                     "OPSP0011", "OPSP0007"]


def test_the_official_samples_path_serves_multi_record_frames_the_collector_parses():
    """The official sample connects to `{ops}/tryitout`; the portal documents `/tryitout/<tr_id>`.
    Trades of one symbol in one second share a frame (`0|H0STCNT0|004|...`), and the collector's
    parser gives back exactly the day's trades from them, in order, none missing."""
    with run_exchange(day=DAY, seed=3, symbols=5, start=OPEN - timedelta(seconds=1), speed=30) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)
        base = "ws" + url.removeprefix("http")

        async def subscribe_reply(path: str) -> str:
            async with websockets.connect(base + path) as ws:
                await ws.send(kis.subscribe(approval, "000660"))
                return json.loads(await ws.recv())["body"]["msg_cd"]

        async def frames_from_tryitout() -> list[str]:
            async with websockets.connect(base + "/tryitout") as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                assert json.loads(await ws.recv())["body"]["msg_cd"] == "OPSP0000"
                data: list[str] = []
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    message = await asyncio.wait_for(ws.recv(), 5)
                    if message[:2] == "0|":
                        data.append(message)
                return data

        replies = [asyncio.run(subscribe_reply(path)) for path in ("/tryitout/H0STCNT0", "/websocket")]
        data = asyncio.run(frames_from_tryitout())
        truth = url.exchange.day.trades("005930")
    assert replies == ["OPSP0000", "OPSP0000"]
    counts = [int(frame.split("|")[2]) for frame in data]
    assert max(counts) > 1, counts
    parsed = [parse_frame(frame) for frame in data]
    for trades in parsed:
        assert len({(t.sym, t.ts) for t in trades}) == 1  # one symbol, one second a frame
    received = [t for trades in parsed for t in trades]
    first = int(truth.cum.searchsorted(received[0].cum))
    expected = range(first, first + len(received))
    assert [(t.cum, t.px, t.qty, t.ts) for t in received] == [
        (int(truth.cum[i]), int(truth.px[i]), int(truth.qty[i]), int(truth.ts[i]) // US * US) for i in expected]


def test_pingpong_keeps_coming_while_the_clock_is_pinned():
    """The gateway's PINGPONG does not depend on trading: a session on a pinned clock still gets it."""
    with run_exchange(day=DAY, seed=3, symbols=5, start=OPEN + timedelta(minutes=5), pinned=True,
                      ping_interval_s=0.3) as url, httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)

        async def run() -> list[str]:
            async with websockets.connect(url.ws_url) as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                messages = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
                return [m["header"]["tr_id"] for m in messages]

        tr_ids = asyncio.run(run())
    assert tr_ids[0] == "H0STCNT0" and tr_ids[1:] == ["PINGPONG", "PINGPONG"]
