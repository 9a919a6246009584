"""The simulated exchange: KIS and Kiwoom REST, KIS WebSocket trades, an admin API. A Starlette app.

Every answer is computed from one `SimDay` read through one `SimClock`: the minute bars a
REST call returns are aggregated from exactly the trades the WebSocket has streamed up to
the same simulated instant (the newest bar may still be forming).

Wall-clock rules (token issue interval and validity, rate-limit windows) run on the real
clock, as at the broker; market data runs on the simulated clock.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from datetime import time as time_of_day

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from stock_pipelines.market import SEOUL, SUPPORTED_FIRST_DAY, SUPPORTED_LAST_DAY
from stock_pipelines.ops import clock as project_clock
from stock_pipelines.sim import kis_protocol as kis
from stock_pipelines.sim import kiwoom_protocol as kiwoom
from stock_pipelines.sim.clock import SimClock
from stock_pipelines.sim.day import US, MinuteBars, SimDay, SymbolTrades, bars_from_trades, symbol_history_day
from stock_pipelines.sim.faults import FaultError, Faults
from stock_pipelines.sim.sessions import sim_calendar, trading_session


@dataclass(frozen=True)
class ExchangeConfig:
    day: date | None = None  # default: today in Seoul if a trading day, else the previous one
    seed: int = 0
    symbols: int = 40
    activity: float = 1.0  # multiplies every symbol's trade rate
    speed: float = 1.0  # simulated seconds per wall second
    start: datetime | None = None  # clock start; default: the session open
    pinned: bool = False
    credentials: dict[str, str] | None = None  # app key -> secret; None accepts any pair
    rate_limit: int = 20  # KIS calls a second per app key
    kiwoom_rate_limit: int = 5  # Kiwoom calls a second per app key
    token_ttl_s: float = 86_400.0
    token_interval_s: float = 60.0  # at most one token issue per app key in this many seconds
    max_subscriptions: int = 41  # per WebSocket session
    history_days: int = 5  # trading days of minute history Kiwoom serves before today
    ws_tick_s: float = 0.05  # how often the stream pushes what the clock has passed
    ping_interval_s: float = 10.0  # PINGPONG frames
    fault_seed: int = 0
    # shares added to each day's FHKST03010100 acml_vol: a broker whose day volume counts
    # after-hours trading, which the real-time feed (and so the archive) does not carry
    after_hours_volume: int = 0

    def resolved_day(self) -> date:
        if self.day is not None:
            return self.day
        today = project_clock.now().date()
        calendar = sim_calendar()
        return today if calendar.is_trading_day(today) else calendar.previous_trading_day(today)


class WindowLimiter:
    """At most `limit` calls per key in each wall-clock second (floor(time.time()))."""

    def __init__(self, limit: int, wall=time.time) -> None:
        self.limit = limit
        self._wall = wall
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        second = int(self._wall())
        with self._lock:
            window, count = self._windows.get(key, (second, 0))
            if window != second:
                count = 0
            self._windows[key] = (second, count + 1)
            return count < self.limit


@dataclass
class Token:
    app_key: str
    expires_at: float  # wall clock


@dataclass(eq=False)  # identity-hashed: kept in a set of open sessions
class WsSession:
    subscriptions: dict[int, str] = field(default_factory=dict)  # symbol index -> tr_key
    unknown: set[str] = field(default_factory=set)  # subscribed codes outside the universe
    cursor_us: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Exchange:
    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.config = config = config or ExchangeConfig()
        self.day = SimDay(config.resolved_day(), seed=config.seed, symbols=config.symbols, activity=config.activity,
                          eager=False)
        # REST answers from per-symbol data at once; the stream needs the whole day's time index.
        threading.Thread(target=self.day.build, name="sim-day-build", daemon=True).start()
        self.bsop_date = f"{self.day.day:%Y%m%d}"
        self.clock = SimClock(config.start or self.day.session.open, speed=config.speed, pinned=config.pinned)
        self.faults = Faults(seed=config.fault_seed)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self.kis_limiter = WindowLimiter(config.rate_limit)
        self.kiwoom_limiter = WindowLimiter(config.kiwoom_rate_limit)
        self.kis_tokens: dict[str, Token] = {}
        self.kiwoom_tokens: dict[str, Token] = {}
        self.approval_keys: dict[str, str] = {}
        self._last_issue: dict[tuple[str, str], float] = {}
        self._tick_contexts: dict[int, kis.TickContext] = {}
        self.sessions: set[WsSession] = set()
        self.app = Starlette(routes=self._routes())

    # -- bookkeeping ------------------------------------------------------------------------

    def count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def stats_snapshot(self) -> dict[str, object]:
        with self._stats_lock:
            counters = dict(self.stats)
        calls = {k.removeprefix("calls:"): v for k, v in counters.items() if k.startswith("calls:")}
        other = {k: v for k, v in counters.items() if not k.startswith("calls:")}
        return {
            "calls": calls,
            "rate_limited": other.pop("rate_limited", 0),
            "tokens_issued": other.pop("tokens_issued", 0),
            "ws_open": len(self.sessions),
            **other,
        }

    def _routes(self) -> list:
        return [
            Route("/health", self.health),
            Route(kis.TOKEN_PATH, self.kis_token, methods=["POST"]),
            Route(kis.APPROVAL_PATH, self.kis_approval, methods=["POST"]),
            Route(kis.ITEMCHART_PATH, self.kis_itemchart, methods=["GET"]),
            Route(kis.DAILYCHART_PATH, self.kis_dailychart, methods=["GET"]),
            Route(kis.PERIODCHART_PATH, self.kis_periodchart, methods=["GET"]),
            WebSocketRoute(kis.WS_PATH, self.kis_websocket),
            WebSocketRoute("/websocket", self.kis_websocket),
            Route(kiwoom.TOKEN_PATH, self.kiwoom_token, methods=["POST"]),
            Route(kiwoom.CHART_PATH, self.kiwoom_chart, methods=["POST"]),
            Route("/admin/faults", self.admin_faults, methods=["GET", "POST"]),
            Route("/admin/clock", self.admin_clock, methods=["GET", "POST"]),
            Route("/admin/stats", self.admin_stats, methods=["GET"]),
            Route("/admin/info", self.admin_info, methods=["GET"]),
            Route("/admin/tokens/expire", self.admin_expire_tokens, methods=["POST"]),
        ]

    # -- shared checks ----------------------------------------------------------------------

    def _credentials_ok(self, app_key: object, secret: object) -> tuple[str, str] | None:
        """None when the pair is accepted, else the (code, message) to refuse it with."""
        if not isinstance(app_key, str) or not app_key:
            return kis.BAD_APPKEY
        if not isinstance(secret, str) or not secret:
            return kis.BAD_APPSECRET
        known = self.config.credentials
        if known is not None:
            if app_key not in known:
                return kis.BAD_APPKEY
            if not secrets.compare_digest(known[app_key], secret):
                return kis.BAD_APPSECRET
        return None

    def _issue_allowed(self, broker: str, app_key: str) -> bool:
        now = time.time()
        with self._stats_lock:
            last = self._last_issue.get((broker, app_key))
            if last is not None and now - last < self.config.token_interval_s:
                return False
            self._last_issue[(broker, app_key)] = now
            return True

    async def _rest_faults(self, broker: str, quotation: bool = True) -> Response | None:
        """Injected latency or failure for this call; token endpoints only see latency and 500s."""
        for fault in self.faults.rest_hits(broker):
            if not quotation and fault.mode in ("egw00201", "unauthorized"):
                continue
            self.count(f"fault:{fault.mode}")
            if fault.mode == "latency":
                await asyncio.sleep(fault.latency_ms / 1000)
            elif fault.mode == "http500":
                return PlainTextResponse("Internal Server Error", status_code=500)
            elif fault.mode == "egw00201":
                if broker == "kiwoom":
                    return JSONResponse(kiwoom.reply(kiwoom.RATE_LIMIT_CODE, kiwoom.RATE_LIMIT_MSG), status_code=429)
                return JSONResponse(kis.envelope(kis.RATE_LIMITED), status_code=500)
            elif fault.mode == "unauthorized":
                if broker == "kiwoom":
                    return JSONResponse(kiwoom.reply(kiwoom.TOKEN_INVALID_CODE, kiwoom.TOKEN_INVALID_MSG), status_code=401)
                return JSONResponse(kis.envelope(kis.TOKEN_EXPIRED), status_code=500)
        return None

    @staticmethod
    async def _json_body(request: Request) -> dict | None:
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    # -- KIS REST ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def kis_token(self, request: Request) -> Response:
        self.count("calls:kis_token")
        if (failure := await self._rest_faults("kis", quotation=False)) is not None:
            return failure
        body = await self._json_body(request)
        if body is None or body.get("grant_type") != "client_credentials":
            return JSONResponse({"error_description": "grant_type 오류", "error_code": "EGW00002"}, status_code=403)
        refused = self._credentials_ok(body.get("appkey"), body.get("appsecret"))
        if refused is not None:
            return JSONResponse({"error_description": refused[1], "error_code": refused[0]}, status_code=403)
        if not self._issue_allowed("kis", body["appkey"]):
            self.count("token_refused")
            code, message = kis.TOKEN_TOO_OFTEN
            return JSONResponse({"error_description": message, "error_code": code}, status_code=403)
        token = secrets.token_urlsafe(48)
        expires = time.time() + self.config.token_ttl_s
        self.kis_tokens[token] = Token(body["appkey"], expires)
        self.count("tokens_issued")
        return JSONResponse(
            {
                "access_token": token,
                "access_token_token_expired": datetime.fromtimestamp(expires, SEOUL).strftime("%Y-%m-%d %H:%M:%S"),
                "token_type": "Bearer",
                "expires_in": int(self.config.token_ttl_s),
            }
        )

    async def kis_approval(self, request: Request) -> Response:
        self.count("calls:kis_approval")
        body = await self._json_body(request)
        if body is None or body.get("grant_type") != "client_credentials":
            return JSONResponse({"error_description": "grant_type 오류", "error_code": "EGW00002"}, status_code=403)
        refused = self._credentials_ok(body.get("appkey"), body.get("secretkey"))
        if refused is not None:
            return JSONResponse({"error_description": refused[1], "error_code": refused[0]}, status_code=403)
        key = secrets.token_hex(18)
        self.approval_keys[key] = body["appkey"]
        return JSONResponse({"approval_key": key})

    def _kis_gate(self, request: Request, tr_id: str) -> Response | None:
        """Token, rate limit and tr_id checks shared by the quotation endpoints."""
        auth = request.headers.get("authorization", "")
        token = self.kis_tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        app_key = request.headers.get("appkey", "")
        if token is None or token.app_key != app_key:
            self.count("unauthorized")
            return JSONResponse(kis.envelope(kis.TOKEN_INVALID), status_code=500)
        if time.time() >= token.expires_at:
            self.count("unauthorized")
            return JSONResponse(kis.envelope(kis.TOKEN_EXPIRED), status_code=500)
        if not self.kis_limiter.allow(app_key):
            self.count("rate_limited")
            return JSONResponse(kis.envelope(kis.RATE_LIMITED), status_code=500)
        if request.headers.get("tr_id") != tr_id:
            return JSONResponse(
                kis.error(kis.TR_ID_MISMATCH_CODE, f"tr_id {request.headers.get('tr_id')!r} 오류: {tr_id} 필요"),
                status_code=500,
            )
        return None

    async def _kis_quotation(self, request: Request, endpoint: str, tr_id: str) -> tuple[str, Response | None]:
        """What every KIS quotation call goes through: count it, injected faults, token, rate limit
        and tr_id, then the symbol. (symbol, None) to answer, or ("", the refusal)."""
        self.count(f"calls:{endpoint}")
        if (failure := await self._rest_faults("kis")) is not None:
            return "", failure
        if (refused := self._kis_gate(request, tr_id)) is not None:
            return "", refused
        code, bad = self._symbol_param(request)
        return (code or "", bad)

    def _symbol_param(self, request: Request) -> tuple[str | None, Response | None]:
        params = request.query_params
        market = params.get("FID_COND_MRKT_DIV_CODE")
        if market not in ("J", "UN", "NX"):
            return None, JSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_COND_MRKT_DIV_CODE"))
        code = params.get("FID_INPUT_ISCD", "")
        if not self.day.has_symbol(code):
            return None, JSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD FID_INPUT_ISCD ({code!r})"))
        return code, None

    def _hour_us(self, day: date, text: str | None) -> int | None:
        if text is None or len(text) != 6 or not text.isdigit():
            return None
        hour, minute, second = int(text[:2]), int(text[2:4]), int(text[4:])
        if hour > 23 or minute > 59 or second > 59:
            return None
        return int(datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SEOUL).timestamp()) * US

    def _summary(self, code: str, now_us: int) -> dict[str, str]:
        trades = self.day.trades(code, until_us=now_us)
        last = int(trades.px[-1]) if len(trades.px) else None
        acml = int(trades.cum[-1]) if len(trades.cum) else 0
        value = int((trades.px * trades.qty).sum())
        return kis.summary_output(self.day.name(code), trades.prev_close, last, acml, value)

    @staticmethod
    def _rows(day: date, bars: MinuteBars, upto_us: int, limit: int) -> list[dict[str, str]]:
        """Bars starting at or before upto_us, newest first, at most `limit`."""
        end = int(np.searchsorted(bars.start, upto_us, side="right"))
        begin = max(0, end - limit)
        yyyymmdd = f"{day:%Y%m%d}"
        return [
            kis.bar_row(yyyymmdd, int(bars.start[i]), int(bars.open[i]), int(bars.high[i]), int(bars.low[i]),
                        int(bars.close[i]), int(bars.volume[i]), int(bars.value[i]))
            for i in range(end - 1, begin - 1, -1)
        ]

    def _bars_on(self, day: date, code: str, now_us: int) -> MinuteBars:
        """A day's bars as of now: today's up to the clock, a past day's whole, a future day's none."""
        if day == self.day.day:
            return self.day.minute_bars(code, until_us=now_us)
        if day > self.day.day:
            return bars_from_trades(*(np.zeros(0, np.int64),) * 4, open_us=0)
        trades = self._trades_on(day, code, now_us)
        open_us = int(trading_session(day).open.timestamp()) * US
        return bars_from_trades(trades.ts, trades.px, trades.qty, trades.cum, open_us)

    async def kis_itemchart(self, request: Request) -> Response:
        code, refused = await self._kis_quotation(request, "kis_itemchart", kis.TR_ITEMCHART)
        if refused is not None:
            return refused
        upto = self._hour_us(self.day.day, request.query_params.get("FID_INPUT_HOUR_1"))
        if upto is None:
            return JSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_HOUR_1 (HHMMSS)"))
        now_us = self.clock.now_us()
        bars = self._bars_on(self.day.day, code, now_us)
        rows = self._rows(self.day.day, bars, upto, kis.ITEMCHART_PAGE)
        body = kis.envelope(kis.OK, output1=self._summary(code, now_us), output2=rows)
        return JSONResponse(body, headers={"tr_id": kis.TR_ITEMCHART, "tr_cont": ""})

    async def kis_dailychart(self, request: Request) -> Response:
        code, refused = await self._kis_quotation(request, "kis_dailychart", kis.TR_DAILYCHART)
        if refused is not None:
            return refused
        params = request.query_params
        try:
            day = datetime.strptime(params.get("FID_INPUT_DATE_1", ""), "%Y%m%d").date()
        except ValueError:
            return JSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_DATE_1 (YYYYMMDD)"))
        upto = self._hour_us(day, params.get("FID_INPUT_HOUR_1"))
        if upto is None:
            return JSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_HOUR_1 (HHMMSS)"))
        if not SUPPORTED_FIRST_DAY <= day <= SUPPORTED_LAST_DAY:
            return JSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD FID_INPUT_DATE_1 ({day:%Y%m%d})"))
        now_us = self.clock.now_us()
        rows: list[dict[str, str]] = []
        calendar = sim_calendar()
        include_past = params.get("FID_PW_DATA_INCU_YN", "N") == "Y"
        current: date | None = day
        while current is not None and current >= SUPPORTED_FIRST_DAY and len(rows) < kis.DAILYCHART_PAGE:
            if calendar.is_trading_day(current):
                bars = self._bars_on(current, code, now_us)
                rows += self._rows(current, bars, upto, kis.DAILYCHART_PAGE - len(rows))
            if not include_past:
                break
            current = calendar.previous_trading_day(current)
            if current is not None:
                upto = int(datetime.combine(current, datetime.max.time(), SEOUL).timestamp()) * US
        body = kis.envelope(kis.OK, output1=self._summary(code, now_us), output2=rows)
        return JSONResponse(body, headers={"tr_id": kis.TR_DAILYCHART, "tr_cont": ""})

    def _trades_on(self, day: date, code: str, now_us: int) -> SymbolTrades:
        """A day's trades as of now: today's up to the clock, a past day's all of them."""
        if day == self.day.day:
            return self.day.trades(code, until_us=now_us)
        return symbol_history_day(day, self.config.seed, code, self.day.symbol_index(code), self.config.activity)

    async def kis_periodchart(self, request: Request) -> Response:
        """FHKST03010100 with FID_PERIOD_DIV_CODE=D: one row a trading day in [DATE_1, DATE_2] that had
        trades, newest first, at most 100; today's row is as of the clock (still growing in the session)."""
        code, refused = await self._kis_quotation(request, "kis_periodchart", kis.TR_PERIODCHART)
        if refused is not None:
            return refused
        params = request.query_params
        bounds = []
        for name in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"):
            try:
                bounds.append(datetime.strptime(params.get(name, ""), "%Y%m%d").date())
            except ValueError:
                return JSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD {name} (YYYYMMDD)"))
        if params.get("FID_PERIOD_DIV_CODE") != "D":
            # W/M/Y exist on the real API; the simulator answers daily rows only
            return JSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_PERIOD_DIV_CODE (D only here)"))
        first, last = max(bounds[0], SUPPORTED_FIRST_DAY), min(bounds[1], self.day.day, SUPPORTED_LAST_DAY)
        now_us = self.clock.now_us()
        rows: list[dict[str, str]] = []
        days = sim_calendar().trading_days(first, last) if first <= last else []
        for current in reversed(days[-kis.PERIODCHART_PAGE:]):
            trades = self._trades_on(current, code, now_us)
            if len(trades.px):
                px = trades.px.astype(np.int64)
                rows.append(kis.day_row(f"{current:%Y%m%d}", int(px[0]), int(px.max()), int(px.min()), int(px[-1]),
                                        int(trades.cum[-1]) + self.config.after_hours_volume,
                                        int((px * trades.qty).sum()), int(trades.prev_close)))
        today_px = self.day.trades(code, until_us=now_us).px
        output1 = kis.period_summary_output(self._summary(code, now_us), code, today_px)
        body = kis.envelope(kis.OK, output1=output1, output2=rows)
        return JSONResponse(body, headers={"tr_id": kis.TR_PERIODCHART, "tr_cont": ""})

    # -- KIS WebSocket ----------------------------------------------------------------------

    def _tick_context(self, sym: int) -> kis.TickContext:
        context = self._tick_contexts.get(sym)
        if context is None:
            context = kis.TickContext.build(self.day.trades(self.day.codes[sym]), self.bsop_date)
            self._tick_contexts[sym] = context
        return context

    async def kis_websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.count("ws_connections")
        session = WsSession(cursor_us=self.clock.now_us())
        self.sessions.add(session)
        sender = asyncio.create_task(self._ws_sender(websocket, session))
        try:
            while True:
                text = await websocket.receive_text()
                await self._ws_control(websocket, session, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            self.sessions.discard(session)

    async def _send(self, websocket: WebSocket, session: WsSession, text: str) -> None:
        async with session.lock:
            await websocket.send_text(text)

    async def _ws_control(self, websocket: WebSocket, session: WsSession, text: str) -> None:
        try:
            message = json.loads(text)
            header, body_input = message["header"], message["body"]["input"]
            tr_id, tr_key = body_input["tr_id"], body_input["tr_key"]
        except (ValueError, KeyError, TypeError):
            if '"PINGPONG"' in text:
                self.count("ws_pingpong_echoes")
                return
            await self._send(websocket, session, kis.ws_reply("", "", kis.WS_BAD_JSON, rt_cd="9"))
            return
        if header.get("tr_id") == "PINGPONG":
            self.count("ws_pingpong_echoes")
            return
        if header.get("approval_key") not in self.approval_keys:
            await self._send(websocket, session, kis.ws_reply(tr_id, tr_key, kis.WS_BAD_APPROVAL, rt_cd="9"))
            return
        if tr_id != kis.TR_TRADES:
            await self._send(websocket, session, kis.ws_reply(tr_id, tr_key, kis.WS_BAD_TR_ID, rt_cd="9"))
            return
        known = self.day.has_symbol(tr_key)
        sym = self.day.symbol_index(tr_key) if known else -1
        subscribed = sym in session.subscriptions if known else tr_key in session.unknown
        tr_type = header.get("tr_type")
        if tr_type == "1":
            if subscribed:
                reply = kis.ws_reply(tr_id, tr_key, kis.WS_ALREADY, rt_cd="1")
            elif len(session.subscriptions) + len(session.unknown) >= self.config.max_subscriptions:
                self.count("ws_max_subscribe_over")
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

    async def _ws_sender(self, websocket: WebSocket, session: WsSession) -> None:
        last_ping = time.monotonic()
        try:
            while True:
                if self.faults.is_active("drop_ws"):
                    self.count("ws_dropped")
                    await websocket.close(code=1011)
                    return
                now_us = self.clock.now_us()
                if not self.day.ready:
                    pass  # the cursor waits: nothing is lost while the day's index is built
                elif self.faults.is_active("stall_ws") or now_us < session.cursor_us:
                    session.cursor_us = now_us  # a stalled feed loses what it did not send
                elif now_us > session.cursor_us:
                    indices = self.day.indices_between(session.cursor_us, now_us)
                    session.cursor_us = now_us
                    if session.subscriptions and len(indices):
                        await self._send_trades(websocket, session, indices)
                    if time.monotonic() - last_ping >= self.config.ping_interval_s:
                        await self._send(websocket, session, kis.pingpong(self.clock.now()))
                        self.count("ws_pingpong_sent")
                        last_ping = time.monotonic()
                await asyncio.sleep(self.config.ws_tick_s)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            return

    async def _send_trades(self, websocket: WebSocket, session: WsSession, indices: np.ndarray) -> None:
        wanted = np.fromiter(session.subscriptions, dtype=np.int64)
        indices = indices[np.isin(self.day.sym[indices], wanted)]
        if not len(indices):
            return
        syms = self.day.sym[indices].astype(np.int64)
        ts = self.day.ts[indices]
        # One frame per run of the same symbol in the same second (KIS batches records: NNN).
        breaks = np.flatnonzero((syms[1:] != syms[:-1]) | (ts[1:] != ts[:-1])) + 1
        for run in np.split(np.arange(len(indices)), breaks):
            sym = int(syms[run[0]])
            context = self._tick_context(sym)
            base = int(self.day.offsets[sym])
            last = int(self.day.offsets[sym + 1]) - 1
            records = [context.record(int(indices[j]) - base, int(indices[j]) == last) for j in run]
            await self._send(websocket, session, kis.data_frame(records))
            self.count("ws_frames_sent")
            self.count("ws_trades_sent", len(records))

    # -- Kiwoom REST ------------------------------------------------------------------------

    async def kiwoom_token(self, request: Request) -> Response:
        self.count("calls:kiwoom_token")
        if (failure := await self._rest_faults("kiwoom", quotation=False)) is not None:
            return failure
        body = await self._json_body(request)
        if body is None or body.get("grant_type") != "client_credentials":
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "grant_type 오류"), status_code=400)
        refused = self._credentials_ok(body.get("appkey"), body.get("secretkey"))
        if refused is not None:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_CREDENTIALS_CODE, refused[1]), status_code=403)
        if not self._issue_allowed("kiwoom", body["appkey"]):
            self.count("token_refused")
            return JSONResponse(kiwoom.reply(5, "토큰 발급 요청이 너무 잦습니다"), status_code=429)
        token = secrets.token_urlsafe(48)
        expires = time.time() + self.config.token_ttl_s
        self.kiwoom_tokens[token] = Token(body["appkey"], expires)
        self.count("tokens_issued")
        expires_dt = datetime.fromtimestamp(expires, SEOUL).strftime("%Y%m%d%H%M%S")
        return JSONResponse(kiwoom.reply(expires_dt=expires_dt, token_type="bearer", token=token))

    def _kiwoom_history(self, code: str, now_us: int, base_day: date) -> list[tuple[date, MinuteBars]]:
        calendar = sim_calendar()
        days: list[date] = []
        current: date | None = min(base_day, self.day.day)
        if not calendar.is_trading_day(current):
            current = calendar.previous_trading_day(current)
        while current is not None and len(days) <= self.config.history_days and current >= SUPPORTED_FIRST_DAY:
            days.append(current)
            current = calendar.previous_trading_day(current)
        return [(d, self._bars_on(d, code, now_us)) for d in days]

    async def kiwoom_chart(self, request: Request) -> Response:
        self.count("calls:kiwoom_chart")
        if (failure := await self._rest_faults("kiwoom")) is not None:
            return failure
        auth = request.headers.get("authorization", "")
        token = self.kiwoom_tokens.get(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
        if token is None or time.time() >= token.expires_at:
            self.count("unauthorized")
            return JSONResponse(kiwoom.reply(kiwoom.TOKEN_INVALID_CODE, kiwoom.TOKEN_INVALID_MSG), status_code=401)
        if not self.kiwoom_limiter.allow(token.app_key):
            self.count("rate_limited")
            return JSONResponse(kiwoom.reply(kiwoom.RATE_LIMIT_CODE, kiwoom.RATE_LIMIT_MSG), status_code=429)
        if request.headers.get("api-id") != kiwoom.MINUTE_CHART_API_ID:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "api-id 오류: ka10080만 지원"), status_code=400)
        body = await self._json_body(request) or {}
        code = str(body.get("stk_cd", ""))
        if not self.day.has_symbol(code):
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, f"종목코드 오류: {code!r}"))
        if str(body.get("tic_scope", "1")) != "1":
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "tic_scope: 시뮬레이터는 1분봉만 지원"))
        try:
            base_day = datetime.strptime(str(body["base_dt"]), "%Y%m%d").date() if body.get("base_dt") else self.day.day
        except ValueError:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "base_dt 오류 (YYYYMMDD)"))
        if not SUPPORTED_FIRST_DAY <= base_day <= SUPPORTED_LAST_DAY:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, f"base_dt 범위 오류: {base_day:%Y%m%d}"))
        now_us = self.clock.now_us()
        rank = self.day.symbol_index(code)
        cursor = request.headers.get("next-key", "") if request.headers.get("cont-yn") == "Y" else ""
        rows: list[dict[str, str]] = []
        more = False
        for day, bars in self._kiwoom_history(code, now_us, base_day):
            prev_close = (
                self.day.trades(code).prev_close if day == self.day.day
                else symbol_history_day(day, self.config.seed, code, rank, self.config.activity).prev_close
            )
            acc_vol = np.cumsum(bars.volume)
            for i in range(len(bars) - 1, -1, -1):
                row = kiwoom.minute_row(int(bars.start[i]), int(bars.open[i]), int(bars.high[i]), int(bars.low[i]),
                                        int(bars.close[i]), int(bars.volume[i]), int(acc_vol[i]), prev_close)
                if cursor and row["cntr_tm"] > cursor:
                    continue
                if len(rows) == kiwoom.PAGE_SIZE:
                    more, cursor = True, row["cntr_tm"]
                    break
                rows.append(row)
            if more:
                break
        headers = {"api-id": kiwoom.MINUTE_CHART_API_ID, "cont-yn": "Y" if more else "N", "next-key": cursor if more else ""}
        return JSONResponse(kiwoom.reply(stk_cd=code, stk_min_pole_chart_qry=rows), headers=headers)

    # -- admin ------------------------------------------------------------------------------

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"active": self.faults.describe()})
        body = await self._json_body(request)
        try:
            active = self.faults.apply(body if body is not None else {})
        except FaultError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        self.count("admin_fault_changes")
        return JSONResponse({"active": active})

    async def admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._json_body(request)
            if body is None:
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            try:
                at = datetime.fromisoformat(body["at"]) if body.get("at") else None
                speed = float(body["speed"]) if body.get("speed") is not None else None
                pinned = body.get("pinned")
                if pinned is not None and not isinstance(pinned, bool):
                    raise ValueError("pinned must be true or false")
                self.clock.set(at=at, speed=speed, pinned=pinned)
            except (ValueError, TypeError) as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(self.clock.state())

    async def admin_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats_snapshot())

    async def admin_info(self, request: Request) -> Response:
        await asyncio.to_thread(self.day.build)
        session = self.day.session
        return JSONResponse(
            {
                "date": self.day.day.isoformat(),
                "seed": self.day.seed,
                "symbols": self.day.codes,
                "open": session.open.isoformat(),
                "close": session.close.isoformat(),
                "trades": len(self.day),
                "clock": self.clock.state(),
                "rate_limit": self.config.rate_limit,
                "kiwoom_rate_limit": self.config.kiwoom_rate_limit,
            }
        )

    async def admin_expire_tokens(self, request: Request) -> Response:
        expired = 0
        for store in (self.kis_tokens, self.kiwoom_tokens):
            for token in store.values():
                token.expires_at = 0.0
                expired += 1
        self._last_issue.clear()
        return JSONResponse({"expired": expired})


def config_with(config: ExchangeConfig | None = None, **overrides: object) -> ExchangeConfig:
    return replace(config or ExchangeConfig(), **overrides)


def session_start(day: date, hhmm: str | None) -> datetime | None:
    """`--start HH:MM[:SS]` on the simulated day, Seoul time (ValueError when malformed)."""
    if hhmm is None:
        return None
    return datetime.combine(day, time_of_day.fromisoformat(hhmm), SEOUL)
