"""Kiwoom real-time WebSocket through real connections, written from the broker's wire format
(plain JSON packets, no project client): LOGIN with the REST token, REG/REMOVE of 0B, the server's
PING, REAL records identical to the KIS trades, and faults that hit one broker only."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta

import httpx
import pytest
import websockets

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.runner import run_exchange

from . import kis

DAY = date(2026, 11, 20)
OPEN = datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL)
US = 1_000_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _token(client: httpx.Client) -> str:
    reply = client.post("/oauth2/token", json={"grant_type": "client_credentials", "appkey": "kw",
                                               "secretkey": "s"})
    assert reply.status_code == 200
    return reply.json()["token"]


def _reg(codes: list[str], trnm: str = "REG") -> str:
    return json.dumps({"trnm": trnm, "grp_no": "1", "refresh": "1",
                       "data": [{"item": codes, "type": ["0B"]}]})


async def _reply(ws) -> dict:
    while True:
        packet = json.loads(await ws.recv())
        if packet["trnm"] not in ("PING", "REAL"):
            return packet


async def _collect(ws, quiet_s: float = 0.6, limit_s: float = 10.0) -> tuple[list[dict], int]:
    """REAL records until the feed is quiet, echoing PINGs: (records, pings echoed)."""
    records, pings = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        try:
            text = await asyncio.wait_for(ws.recv(), quiet_s)
        except TimeoutError:
            break
        packet = json.loads(text)
        if packet["trnm"] == "PING":
            await ws.send(text)
            pings += 1
        elif packet["trnm"] == "REAL":
            records += packet["data"]
    return records, pings


def test_login_registration_and_records_equal_to_the_exchanges_trades():
    with run_exchange(day=DAY, seed=3, symbols=20, start=OPEN - timedelta(seconds=2), pinned=True, speed=150,
                      ping_interval_s=0.5) as url, httpx.Client(base_url=url, timeout=10) as client:
        day = url.exchange.day
        symbols = [day.codes[0], day.codes[7], day.codes[-1]]
        token = _token(client)

        async def run():
            async with websockets.connect(url.kiwoom_ws_url) as ws:
                await ws.send(_reg(symbols))
                early = await _reply(ws)
                await ws.send(json.dumps({"trnm": "LOGIN", "token": token}))
                login = await _reply(ws)
                await ws.send(_reg(symbols))
                registered = await _reply(ws)
                await ws.send(_reg(["999999"]))
                unknown = await _reply(ws)
                client.post("/admin/clock", json={"pinned": False}).raise_for_status()
                await asyncio.sleep(2.0)  # about five simulated minutes
                now = client.post("/admin/clock", json={"pinned": True}).json()["now"]
                records, pings = await _collect(ws)
                await ws.send(_reg(symbols[1:], "REMOVE"))
                removed = await _reply(ws)
                return early, login, registered, unknown, records, pings, removed, now

        early, login, registered, unknown, records, pings, removed, now = asyncio.run(run())
    assert early["return_code"] != 0  # REG before LOGIN is refused
    assert login["trnm"] == "LOGIN" and login["return_code"] == 0
    assert (registered["trnm"], registered["return_code"]) == ("REG", 0)
    assert unknown["return_code"] != 0 and "999999" in unknown["return_msg"]
    assert removed == {"trnm": "REMOVE", "return_code": 0, "return_msg": ""}
    assert pings >= 1
    now_us = int(datetime.fromisoformat(now).timestamp() * US)
    assert {r["type"] for r in records} == {"0B"} and {r["name"] for r in records} == {"주식체결"}
    for code in symbols:
        mine = [r["values"] for r in records if r["item"] == code]
        truth = day.trades(code, until_us=now_us)
        # every trade up to the pinned instant, once, in order: cum, price and quantity as KIS sends them
        assert [(int(v["13"]), int(v["10"].lstrip("+-")), int(v["15"].lstrip("+-"))) for v in mine] == list(
            zip(truth.cum.tolist(), truth.px.tolist(), truth.qty.tolist(), strict=True))
        assert mine[0]["20"] == "090000"
        buys = [v["15"].startswith("+") for v in mine]
        assert buys == (truth.side == 1).tolist()  # the quantity's sign is the trade's side


def test_a_bad_token_is_refused_and_faults_hit_one_broker_only():
    with run_exchange(day=DAY, seed=3, symbols=5, start=OPEN + timedelta(minutes=5), speed=60) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        code = url.exchange.day.codes[0]
        token = _token(client)
        approval = kis.approval(client)

        async def refused_login() -> tuple[dict, int | None]:
            async with websockets.connect(url.kiwoom_ws_url) as ws:
                await ws.send(json.dumps({"trnm": "LOGIN", "token": "not-a-token"}))
                reply = await _reply(ws)
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as closed:
                    return reply, closed.rcvd.code if closed.rcvd else None
                return reply, None

        async def both_feeds(fault: dict) -> tuple[bool, bool]:
            """Open a KIS and a Kiwoom session, inject `fault`: (KIS closed, Kiwoom closed)."""
            async with websockets.connect(url.ws_url) as kis_ws, \
                    websockets.connect(url.kiwoom_ws_url) as kw_ws:
                await kis_ws.send(kis.subscribe(approval, code))
                await kis_ws.recv()
                await kw_ws.send(json.dumps({"trnm": "LOGIN", "token": token}))
                await _reply(kw_ws)
                await kw_ws.send(_reg([code]))
                await _reply(kw_ws)
                client.post("/admin/faults", json=fault).raise_for_status()
                closed = await asyncio.gather(_closed_within(kis_ws, 1.0), _closed_within(kw_ws, 1.0))
                client.post("/admin/faults", json={"mode": "none"}).raise_for_status()
                return closed[0], closed[1]

        reply, close_code = asyncio.run(refused_login())
        assert reply["trnm"] == "LOGIN" and reply["return_code"] == 8005 and close_code == 1008
        assert asyncio.run(both_feeds({"mode": "drop_ws", "target": "kis"})) == (True, False)
        assert asyncio.run(both_feeds({"mode": "drop_ws", "target": "kiwoom"})) == (False, True)
        assert asyncio.run(both_feeds({"mode": "drop_ws"})) == (True, True)  # default: both brokers
        client.post("/admin/faults", json={"mode": "unauthorized", "target": "kiwoom"}).raise_for_status()
        reply_refused = asyncio.run(_login_reply(url.kiwoom_ws_url, token))
        client.post("/admin/faults", json={"mode": "none"}).raise_for_status()
        assert reply_refused["return_code"] == 8005
        assert client.get("/admin/stats").json()["kiwoom_ws_login_refused"] == 2


async def _closed_within(ws, seconds: float) -> bool:
    """Whether the server closes `ws` within `seconds` (what arrives meanwhile is read and dropped)."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        return True
    except TimeoutError:
        return False


async def _login_reply(ws_url: str, token: str) -> dict:
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"trnm": "LOGIN", "token": token}))
        return await _reply(ws)
