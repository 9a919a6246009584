"""The simulated Kiwoom real-time WebSocket: LOGIN with a REST token, REG/REMOVE of type 0B
주식체결, the server's PING (echoed by the client), and REAL trade records.

A session receives the trades its registered symbols execute after it registered them (no
replay), as the simulated clock passes them: the same trades, with the same cumulative volume,
that the KIS WebSocket streams (both read one `SimDay`). Wire format: `kiwoom_protocol`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from stock_pipelines.sim import kiwoom_protocol as kiwoom
from stock_pipelines.sim.day import SimDay, tick_size
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.kis_protocol import hhmmss
from stock_pipelines.sim.rest_gate import TokenBook
from stock_pipelines.sim.ws_stream import TickContexts, send_text, serve_session, stream_trades

RECORDS_PER_MESSAGE = 100  # REAL messages carry a list of records; the simulator caps one at this many


@dataclass(eq=False)  # identity-hashed: kept in a set of open sessions
class KiwoomSession:
    logged_in: bool = False
    subscriptions: set[int] = field(default_factory=set)  # symbol indices registered for 0B
    cursor_us: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class KiwoomWebSocket:
    def __init__(self, state: ExchangeState, tokens: TokenBook) -> None:
        self.state = state
        self.tokens = tokens  # issued by the Kiwoom REST token endpoint
        self.sessions: set[KiwoomSession] = set()
        self._contexts = TickContexts()

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute(kiwoom.WS_PATH, self.serve)]

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.state.count("kiwoom_ws_connections")
        session = KiwoomSession(cursor_us=self.state.clock.now_us())
        await serve_session(websocket, session, self.sessions, self._sender(websocket, session),
                            lambda text: self._control(websocket, session, text))

    async def _send(self, websocket: WebSocket, session: KiwoomSession, text: str) -> None:
        await send_text(websocket, session, text)

    async def _reply(self, websocket: WebSocket, session: KiwoomSession, trnm: str, code: int,
                     text: str) -> None:
        await self._send(websocket, session, kiwoom.message(trnm, code, text))

    async def _control(self, websocket: WebSocket, session: KiwoomSession, text: str) -> bool:
        """Answer one client packet; False when the session is to be closed (a refused LOGIN)."""
        try:
            packet = json.loads(text)
            trnm = packet["trnm"]
        except (ValueError, KeyError, TypeError):
            await self._reply(websocket, session, "SYSTEM", kiwoom.BAD_PACKET_CODE, "잘못된 요청입니다")
            return True
        if trnm == "PING":
            self.state.count("kiwoom_ws_ping_echoes")
            return True
        if trnm == "LOGIN":
            token = self.tokens.get(str(packet.get("token", "")))
            refused = self.state.faults.is_active("unauthorized", "kiwoom")
            if token is None or time.time() >= token.expires_at or refused:
                self.state.count("kiwoom_ws_login_refused")
                await self._reply(websocket, session, "LOGIN", kiwoom.TOKEN_INVALID_CODE,
                                  kiwoom.TOKEN_INVALID_MSG)
                return False
            session.logged_in = True
            await self._reply(websocket, session, "LOGIN", 0, kiwoom.OK_MSG)
            return True
        if trnm not in ("REG", "REMOVE"):
            await self._reply(websocket, session, trnm, kiwoom.BAD_PACKET_CODE, f"알 수 없는 trnm {trnm!r}")
            return True
        if not session.logged_in:
            await self._reply(websocket, session, trnm, kiwoom.LOGIN_REQUIRED_CODE, "LOGIN이 필요합니다")
            return True
        codes, problem = self._trade_items(packet)
        if problem:
            await self._reply(websocket, session, trnm, kiwoom.BAD_INPUT_CODE, problem)
            return True
        day = self.state.day
        indices = {day.symbol_index(code) for code in codes}
        if trnm == "REG":
            if str(packet.get("refresh", "1")) == "0":  # register anew: what was registered before is dropped
                session.subscriptions.clear()
            session.subscriptions |= indices
        else:
            session.subscriptions -= indices
        await self._reply(websocket, session, trnm, 0, "")
        return True

    def _trade_items(self, packet: dict) -> tuple[list[str], str]:
        """The codes of a REG/REMOVE packet's 0B entries, or a problem naming what is wrong."""
        entries = packet.get("data")
        if not isinstance(entries, list) or not entries:
            return [], "data 항목이 없습니다"
        codes: list[str] = []
        for entry in entries:
            items, types = (entry.get("item"), entry.get("type")) if isinstance(entry, dict) else (None, None)
            if not isinstance(items, list) or not isinstance(types, list):
                return [], "item/type 은 목록이어야 합니다"
            if types != [kiwoom.TRADE_TYPE]:
                return [], f"type {types!r}: 시뮬레이터는 0B(주식체결)만 지원"
            unknown = [code for code in items if not self.state.day.has_symbol(str(code))]
            if unknown:
                return [], f"종목코드 오류: {unknown[:5]!r}"
            codes += [str(code) for code in items]
        return codes, ""

    async def _sender(self, websocket: WebSocket, session: KiwoomSession) -> None:
        async def send_trades(day: SimDay, indices: np.ndarray) -> None:
            await self._send_trades(websocket, session, day, indices)

        async def send_ping() -> None:
            await self._send(websocket, session, kiwoom.ping())
            self.state.count("kiwoom_ws_ping_sent")

        await stream_trades(self.state, "kiwoom", websocket, session, send_trades, send_ping)

    async def _send_trades(
        self, websocket: WebSocket, session: KiwoomSession, day: SimDay, indices: np.ndarray
    ) -> None:
        wanted = np.fromiter(session.subscriptions, dtype=np.int64)
        indices = indices[np.isin(day.sym[indices], wanted)]
        records = [self.record(day, int(i)) for i in indices]
        for start in range(0, len(records), RECORDS_PER_MESSAGE):
            chunk = records[start:start + RECORDS_PER_MESSAGE]
            await self._send(websocket, session, kiwoom.real(chunk))
            self.state.count("kiwoom_ws_messages_sent")
            self.state.count("kiwoom_ws_trades_sent", len(chunk))

    def record(self, day: SimDay, index: int) -> tuple[str, dict[str, str]]:
        sym = int(day.sym[index])
        context = self._contexts.get(day, sym)
        i = index - int(day.offsets[sym])
        t = context.trades
        px = int(t.px[i])
        tick = int(tick_size(np.array([px]))[0])
        is_buy = bool(t.side[i] == 1)
        ask, bid = (px, px - tick) if is_buy else (px + tick, px)
        return t.code, kiwoom.trade_values(
            hhmmss(int(t.ts[i])), px, int(t.qty[i]), is_buy, int(t.cum[i]), int(context.value[i]),
            int(t.prev_close), int(t.px[0]), int(context.high[i]), int(context.low[i]), ask, bid)
