"""The simulated KIS WebSocket: H0STCNT0 subscriptions and the trade stream, PINGPONG.

A session receives the trades its subscribed symbols execute after it connected (no replay),
as the simulated clock passes them, on every day the clock passes: a connection is kept across
the night (PINGPONG goes on) and carries the next session's trades. Wire format: `kis_protocol`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import numpy as np
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from stock_pipelines.sim import kis_protocol as kis
from stock_pipelines.sim.day import SimDay
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.ws_stream import TickContexts, send_text, serve_session, stream_trades


@dataclass(eq=False)  # identity-hashed: kept in a set of open sessions
class WsSession:
    subscriptions: dict[int, str] = field(default_factory=dict)  # symbol index -> tr_key
    unknown: set[str] = field(default_factory=set)  # subscribed codes outside the universe
    cursor_us: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class KisWebSocket:
    def __init__(self, state: ExchangeState, approval_keys: dict[str, str]) -> None:
        self.state = state
        self.approval_keys = approval_keys  # issued by the REST approval endpoint
        self.sessions: set[WsSession] = set()
        self._tick_contexts = TickContexts()

    def routes(self) -> list[WebSocketRoute]:
        # The official sample connects to `{ops}/tryitout` (examples_llm/kis_auth.py, chk_ccnl_krx.py),
        # the API portal documents `/tryitout/<tr_id>`; one session serves every path.
        return [WebSocketRoute(path, self.serve) for path in kis.WS_PATHS]

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.state.count("ws_connections")
        session = WsSession(cursor_us=self.state.clock.now_us())
        await serve_session(websocket, session, self.sessions, self._sender(websocket, session),
                            lambda text: self._control(websocket, session, text))

    async def _send(self, websocket: WebSocket, session: WsSession, text: str) -> None:
        await send_text(websocket, session, text)

    async def _control(self, websocket: WebSocket, session: WsSession, text: str) -> None:
        try:
            message = json.loads(text)
            header, body_input = message["header"], message["body"]["input"]
            tr_id, tr_key = body_input["tr_id"], body_input["tr_key"]
        except (ValueError, KeyError, TypeError):
            if '"PINGPONG"' in text:
                self.state.count("ws_pingpong_echoes")
                return
            await self._send(websocket, session, kis.ws_reply("", "", kis.WS_BAD_JSON, rt_cd="9"))
            return
        if header.get("tr_id") == "PINGPONG":
            self.state.count("ws_pingpong_echoes")
            return
        refused = self.state.faults.is_active("unauthorized", "kis")
        if header.get("approval_key") not in self.approval_keys or refused:
            await self._send(websocket, session, kis.ws_reply(tr_id, tr_key, kis.WS_BAD_APPROVAL, rt_cd="9"))
            return
        if tr_id != kis.TR_TRADES:
            await self._send(websocket, session, kis.ws_reply(tr_id, tr_key, kis.WS_BAD_TR_ID, rt_cd="9"))
            return
        day = self.state.day
        known = day.has_symbol(tr_key)
        sym = day.symbol_index(tr_key) if known else -1
        subscribed = sym in session.subscriptions if known else tr_key in session.unknown
        tr_type = header.get("tr_type")
        if tr_type == "1":
            if subscribed:
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_ALREADY, rt_cd="1")
            elif len(session.subscriptions) + len(session.unknown) >= self.state.config.max_subscriptions:
                self.state.count("ws_max_subscribe_over")
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_MAX_OVER, rt_cd="1")
            else:
                if known:
                    session.subscriptions[sym] = tr_key
                else:
                    session.unknown.add(tr_key)
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_SUBSCRIBED, with_keys=True)
        elif tr_type == "2":
            if not subscribed:
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_NOT_SUBSCRIBED, rt_cd="1")
            else:
                session.subscriptions.pop(sym, None)
                session.unknown.discard(tr_key)
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_UNSUBSCRIBED)
        else:
            reply = kis.ws_reply(tr_id, tr_key, kis.WS_BAD_JSON, rt_cd="9")
        await self._send(websocket, session, reply)

    async def _sender(self, websocket: WebSocket, session: WsSession) -> None:
        async def send_trades(day: SimDay, indices: np.ndarray) -> None:
            await self._send_trades(websocket, session, day, indices)

        async def send_ping() -> None:
            await self._send(websocket, session, kis.pingpong(self.state.clock.now()))
            self.state.count("ws_pingpong_sent")

        await stream_trades(self.state, "kis", websocket, session, send_trades, send_ping)

    async def _send_trades(self, websocket: WebSocket, session: WsSession, day: SimDay, indices: np.ndarray) -> None:
        wanted = np.fromiter(session.subscriptions, dtype=np.int64)
        indices = indices[np.isin(day.sym[indices], wanted)]
        if not len(indices):
            return
        syms = day.sym[indices].astype(np.int64)
        ts = day.ts[indices]
        # One frame per run of the same symbol in the same second (KIS batches records: NNN).
        breaks = np.flatnonzero((syms[1:] != syms[:-1]) | (ts[1:] != ts[:-1])) + 1
        for run in np.split(np.arange(len(indices)), breaks):
            sym = int(syms[run[0]])
            context = self._tick_contexts.get(day, sym)
            base = int(day.offsets[sym])
            last = int(day.offsets[sym + 1]) - 1
            records = [context.record(int(indices[j]) - base, int(indices[j]) == last) for j in run]
            await self._send(websocket, session, kis.data_frame(records))
            self.state.count("ws_frames_sent")
            self.state.count("ws_trades_sent", len(records))
