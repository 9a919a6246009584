"""The trade stream both brokers' simulated WebSockets push: what the simulated clock has passed
since the session's cursor, under the per-broker `drop_ws` and `stall_ws` faults, with the
broker's keep-alive. The broker module renders the trades and the ping in its own wire format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from stock_pipelines.sim.exchange_state import ExchangeState


class StreamSession(Protocol):
    cursor_us: int  # the simulated instant up to which the session has been served

    @property
    def subscriptions(self) -> object: ...  # empty when nothing is subscribed


async def stream_trades(
    state: ExchangeState, broker: str, websocket: WebSocket, session: StreamSession,
    send_trades: Callable[[np.ndarray], Awaitable[None]], send_ping: Callable[[], Awaitable[None]],
) -> None:
    """Until the connection ends: every `ws_tick_s`, the indices of the trades executed since the
    cursor to `send_trades`, and `send_ping` every `ping_interval_s` of wall time. A
    `drop_ws` fault for `broker` closes the connection (1011); during `stall_ws` nothing is sent
    and what passes is lost; while the day's index is built the cursor waits (nothing is lost)."""
    day, config = state.day, state.config
    last_ping = time.monotonic()
    try:
        while True:
            if state.faults.is_active("drop_ws", broker):
                state.count("ws_dropped" if broker == "kis" else f"{broker}_ws_dropped")
                await websocket.close(code=1011)
                return
            now_us = state.clock.now_us()
            stalled = state.faults.is_active("stall_ws", broker)
            if not day.ready:
                pass
            elif stalled or now_us < session.cursor_us:
                session.cursor_us = now_us
            elif now_us > session.cursor_us:
                indices = day.indices_between(session.cursor_us, now_us)
                session.cursor_us = now_us
                if session.subscriptions and len(indices):
                    await send_trades(indices)
            # the keep-alive keeps its wall-clock rhythm whatever the market clock does (pinned, closed)
            if not stalled and time.monotonic() - last_ping >= config.ping_interval_s:
                await send_ping()
                last_ping = time.monotonic()
            await asyncio.sleep(config.ws_tick_s)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        return
