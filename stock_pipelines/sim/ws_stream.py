"""The trade stream both brokers' simulated WebSockets push: what the simulated clock has passed
since the session's cursor, under the per-broker `drop_ws` and `stall_ws` faults, with the
broker's keep-alive. The broker module renders the trades and the ping in its own wire format.
A session lives across days: the close of one and the open of the next reach it on the same
connection, whatever the clock skipped in between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date
from typing import Protocol

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.kis_protocol import TickContext


class StreamSession(Protocol):
    cursor_us: int  # the simulated instant up to which the session has been served
    lock: asyncio.Lock  # one frame at a time on the connection

    @property
    def subscriptions(self) -> object: ...  # empty when nothing is subscribed


class TickContexts:
    """Each symbol's tick context (running high, low, value) for the last two streamed days: a
    session crosses at most one night at a time."""

    def __init__(self) -> None:
        self._by_day: dict[date, dict[int, TickContext]] = {}

    def get(self, day: SimDay, sym: int) -> TickContext:
        contexts = self._by_day.get(day.day)
        if contexts is None:
            contexts = self._by_day[day.day] = {}
            for old in sorted(self._by_day)[:-2]:
                del self._by_day[old]
        context = contexts.get(sym)
        if context is None:
            context = contexts[sym] = TickContext.build(day.trades(day.codes[sym]), f"{day.day:%Y%m%d}")
        return context


async def stream_trades(
    state: ExchangeState, broker: str, websocket: WebSocket, session: StreamSession,
    send_trades: Callable[[SimDay, np.ndarray], Awaitable[None]], send_ping: Callable[[], Awaitable[None]],
) -> None:
    """Until the connection ends: every `ws_tick_s`, each day's indices of the trades executed
    since the cursor to `send_trades`, and `send_ping` every `ping_interval_s` of wall time. A
    `drop_ws` fault for `broker` closes the connection (1011); during `stall_ws` nothing is sent
    and what passes is lost; while a day's index is built the cursor waits (nothing is lost)."""
    config = state.config
    last_ping = time.monotonic()
    try:
        while True:
            if state.faults.is_active("drop_ws", broker):
                state.count("ws_dropped" if broker == "kis" else f"{broker}_ws_dropped")
                await websocket.close(code=1011)
                return
            now_us = state.clock.now_us()
            days = state.days_streaming(session.cursor_us, now_us) if now_us > session.cursor_us else []
            stalled = state.faults.is_active("stall_ws", broker)
            if not all(day.ready for day in days):
                pass
            elif stalled or now_us < session.cursor_us:
                session.cursor_us = now_us
            elif now_us > session.cursor_us:
                after_us, session.cursor_us = session.cursor_us, now_us
                for day in days:
                    indices = day.indices_between(after_us, now_us)
                    if session.subscriptions and len(indices):
                        await send_trades(day, indices)
            # the keep-alive keeps its wall-clock rhythm whatever the market clock does (pinned, closed)
            if not stalled and time.monotonic() - last_ping >= config.ping_interval_s:
                await send_ping()
                last_ping = time.monotonic()
            await asyncio.sleep(config.ws_tick_s)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        return


async def serve_session(
    websocket: WebSocket, session: StreamSession, sessions: set, sender: Coroutine[object, object, None],
    control: Callable[[str], Awaitable[bool | None]],
) -> None:
    """One accepted connection: `session` is in `sessions` and `sender` streams while `control`
    answers each text frame the client sends; a control answering False closes the connection
    with 1008 (policy violation). Ends when the client goes."""
    sessions.add(session)
    streaming = asyncio.create_task(sender)
    try:
        while True:
            if await control(await websocket.receive_text()) is False:
                await websocket.close(code=1008)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        streaming.cancel()
        sessions.discard(session)


async def send_text(websocket: WebSocket, session: StreamSession, text: str) -> None:
    """One frame, never interleaved with another of the same session (stream and replies)."""
    async with session.lock:
        await websocket.send_text(text)
