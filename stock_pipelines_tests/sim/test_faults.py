"""Each fault mode, switched at run time through POST /admin/faults, seen through real clients."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timedelta

import httpx
import pytest
import websockets

from stock_pipelines.market import SEOUL
from stock_pipelines.sim.runner import run_exchange

from . import kis

DAY = date(2026, 11, 20)
OPEN = datetime(2026, 11, 20, 9, 0, tzinfo=SEOUL)
AFTER_CLOSE = datetime(2026, 11, 20, 15, 40, tzinfo=SEOUL)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def exchange():
    with run_exchange(day=DAY, seed=5, symbols=5, start=AFTER_CLOSE, pinned=True, rate_limit=1_000) as url:
        yield url


@pytest.fixture
def client(exchange):
    with httpx.Client(base_url=exchange, timeout=10) as client:
        yield client


def _fault(client: httpx.Client, **request) -> dict:
    reply = client.post("/admin/faults", json=request)
    assert reply.status_code == 200, reply.text
    return reply.json()["active"]


def _call(client: httpx.Client, token: str) -> httpx.Response:
    return kis.itemchart(client, token, "005930", "153000")


def test_http500_then_recovery(client):
    token = kis.token(client).json()["access_token"]
    _fault(client, mode="http500")
    failed = _call(client, token)
    assert failed.status_code == 500 and "rt_cd" not in failed.text
    assert _fault(client, mode="none") == {}
    assert _call(client, token).json()["rt_cd"] == "0"
    assert client.get("/admin/stats").json()["fault:http500"] == 1


def test_latency(client):
    token = kis.token(client).json()["access_token"]
    _fault(client, mode="latency", latency_ms=300)
    started = time.monotonic()
    assert _call(client, token).json()["rt_cd"] == "0"
    assert time.monotonic() - started >= 0.3


def test_egw00201_storm_and_unauthorized(client):
    token = kis.token(client).json()["access_token"]
    _fault(client, mode="egw00201")
    assert {_call(client, token).json()["msg_cd"] for _ in range(5)} == {"EGW00201"}
    _fault(client, mode="egw00201", enabled=False)
    _fault(client, mode="unauthorized")
    reply = _call(client, token)
    assert reply.status_code == 500 and reply.json()["msg_cd"] == "EGW00123"
    _fault(client, mode="none")
    assert _call(client, token).json()["rt_cd"] == "0"


def test_probability_is_deterministic_and_target_scoped():
    def pattern() -> list[int]:
        with run_exchange(day=DAY, seed=5, symbols=5, start=AFTER_CLOSE, pinned=True, rate_limit=1_000,
                          fault_seed=11) as url, httpx.Client(base_url=url, timeout=10) as client:
            token = kis.token(client).json()["access_token"]
            _fault(client, mode="http500", probability=0.5)
            codes = [_call(client, token).status_code for _ in range(20)]
            _fault(client, mode="http500", target="kiwoom")
            assert _call(client, token).status_code == 200  # a Kiwoom-only fault leaves KIS alone
            return codes

    first = pattern()
    assert first == pattern() and 0 < first.count(500) < 20


def test_bad_fault_requests_are_refused(client):
    for request, message in (({"mode": "meteor"}, "unknown fault mode"), ({"mode": "http500", "probability": 2}, "0..1"),
                             ({}, "mode")):
        reply = client.post("/admin/faults", json=request)
        assert reply.status_code == 400 and message in reply.json()["error"]


def _ws_exchange():
    return run_exchange(day=DAY, seed=5, symbols=5, start=OPEN - timedelta(seconds=1), speed=60)


def test_drop_ws_closes_connections_until_cleared():
    with _ws_exchange() as url, httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)

        async def run():
            async with websockets.connect(url.ws_url) as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                await ws.recv()
                _fault(client, mode="drop_ws")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 3)
                assert closed.value.rcvd.code == 1011
            async with websockets.connect(url.ws_url) as ws:  # reconnecting does not help while active
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 3)
            _fault(client, mode="none")
            async with websockets.connect(url.ws_url) as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                assert json.loads(await asyncio.wait_for(ws.recv(), 3))["body"]["msg_cd"] == "OPSP0000"
                assert (await asyncio.wait_for(ws.recv(), 3))[0] == "0"

        asyncio.run(run())
        assert client.get("/admin/stats").json()["ws_dropped"] == 2


def test_stall_ws_keeps_the_connection_but_sends_nothing():
    with _ws_exchange() as url, httpx.Client(base_url=url, timeout=10) as client:
        approval = kis.approval(client)

        async def frames_within(ws, seconds: float) -> int:
            count, deadline = 0, time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    message = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    break
                count += message[0] == "0"
            return count

        async def run():
            async with websockets.connect(url.ws_url) as ws:
                await ws.send(kis.subscribe(approval, "005930"))
                await ws.recv()
                assert await frames_within(ws, 0.5) > 0
                _fault(client, mode="stall_ws")
                await frames_within(ws, 0.2)  # drain what was in flight
                assert await frames_within(ws, 1.0) == 0
                await ws.send(kis.subscribe(approval, "000660"))  # still connected and answering
                assert json.loads(await asyncio.wait_for(ws.recv(), 3))["body"]["msg_cd"] == "OPSP0000"
                _fault(client, mode="none")
                assert await frames_within(ws, 1.0) > 0

        asyncio.run(run())
