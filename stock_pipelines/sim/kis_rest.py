"""The simulated KIS REST API: token, WebSocket approval key, and the quotation calls (today's
minute bars, a day's minute bars, daily bars, today's trades). Wire format: `kis_protocol`,
`kis_trades`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import date, datetime

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock_pipelines.market import SEOUL, SUPPORTED_FIRST_DAY, SUPPORTED_LAST_DAY
from stock_pipelines.market.segments import US, to_us
from stock_pipelines.sim import kis_protocol as kis
from stock_pipelines.sim import kis_trades
from stock_pipelines.sim.day import MinuteBars
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.rest_gate import TokenBook, WindowLimiter, credentials_refusal, json_body, rest_faults
from stock_pipelines.sim.sessions import sim_calendar


class GatewayJSONResponse(JSONResponse):
    """A JSON reply with the headers the KIS gateway sends: `Content-Type` and `Content-Length`
    capitalised, and on quotation replies `tr_id`, `tr_cont` and a `gt_uid` (global transaction id).

    The casing matters: the official sample (kis_auth.APIResp) turns every all-lowercase header name
    into a namedtuple field, so `content-length` (the ASGI default spelling) crashes it, while the
    gateway's lowercase names (tr_id, tr_cont, gt_uid) are identifiers. The names reach the wire as
    spelled here because the server runs uvicorn's h11 protocol (sim/runner.py); uvicorn's own
    `date` and `server` headers are lowercase identifiers too."""

    media_type = "application/json; charset=UTF-8"
    _GATEWAY_CASE = {b"content-type": b"Content-Type", b"content-length": b"Content-Length"}

    def __init__(self, content: object, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 tr_id: str | None = None, tr_cont: str = "") -> None:
        extra = dict(headers or {})
        if tr_id is not None:
            extra.update({"tr_id": tr_id, "tr_cont": tr_cont, "gt_uid": secrets.token_hex(16)})
        super().__init__(content, status_code, extra)
        self.raw_headers = [(self._GATEWAY_CASE.get(name, name), value) for name, value in self.raw_headers]


class KisRest:
    def __init__(self, state: ExchangeState) -> None:
        self.state = state
        self.tokens = TokenBook(state.config.token_ttl_s, state.config.token_interval_s)
        self.limiter = WindowLimiter(state.config.rate_limit)
        self.approval_keys: dict[str, str] = {}  # WebSocket approval key -> app key

    def routes(self) -> list[Route]:
        return [
            Route(kis.TOKEN_PATH, self.token, methods=["POST"]),
            Route(kis.APPROVAL_PATH, self.approval, methods=["POST"]),
            Route(kis.ITEMCHART_PATH, self.itemchart, methods=["GET"]),
            Route(kis.DAILYCHART_PATH, self.dailychart, methods=["GET"]),
            Route(kis.PERIODCHART_PATH, self.periodchart, methods=["GET"]),
            Route(kis_trades.TRADES_PATH, self.trades, methods=["GET"]),
        ]

    # -- tokens -----------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        self.state.count("calls:kis_token")
        if (failure := await rest_faults(self.state, "kis", quotation=False)) is not None:
            return failure
        body = await json_body(request)
        if (refused := self._grant_refusal(body, "appsecret")) is not None:
            return refused
        if not self.tokens.issue_allowed(body["appkey"]):
            self.state.count("token_refused")
            code, message = kis.TOKEN_TOO_OFTEN
            return GatewayJSONResponse({"error_description": message, "error_code": code}, status_code=403)
        token, expires = self.tokens.issue(body["appkey"])
        self.state.count("tokens_issued")
        return GatewayJSONResponse(
            {
                "access_token": token,
                "access_token_token_expired": datetime.fromtimestamp(expires, SEOUL).strftime("%Y-%m-%d %H:%M:%S"),
                "token_type": "Bearer",
                "expires_in": int(self.tokens.ttl_s),
            }
        )

    async def approval(self, request: Request) -> Response:
        self.state.count("calls:kis_approval")
        body = await json_body(request)
        if (refused := self._grant_refusal(body, "secretkey")) is not None:
            return refused
        key = secrets.token_hex(18)
        self.approval_keys[key] = body["appkey"]
        return GatewayJSONResponse({"approval_key": key})

    def _grant_refusal(self, body: dict | None, secret_field: str) -> Response | None:
        """The 403 for a body that is not a client-credentials grant with accepted credentials."""
        if body is None or body.get("grant_type") != "client_credentials":
            return GatewayJSONResponse({"error_description": "grant_type 오류", "error_code": "EGW00002"}, status_code=403)
        refused = credentials_refusal(self.state.config.credentials, body.get("appkey"), body.get(secret_field))
        if refused is not None:
            return GatewayJSONResponse({"error_description": refused[1], "error_code": refused[0]}, status_code=403)
        return None

    # -- what every quotation call passes -----------------------------------------------------

    def _gate(self, request: Request, tr_id: str) -> Response | None:
        """Token, rate limit and tr_id checks shared by the quotation endpoints."""
        auth = request.headers.get("authorization", "")
        token = self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        app_key = request.headers.get("appkey", "")
        if token is None or token.app_key != app_key:
            self.state.count("unauthorized")
            return GatewayJSONResponse(kis.envelope(kis.TOKEN_INVALID), status_code=500)
        if time.time() >= token.expires_at:
            self.state.count("unauthorized")
            return GatewayJSONResponse(kis.envelope(kis.TOKEN_EXPIRED), status_code=500)
        if not self.limiter.allow(app_key):
            self.state.count("rate_limited")
            return GatewayJSONResponse(kis.envelope(kis.RATE_LIMITED), status_code=500)
        if request.headers.get("tr_id") != tr_id:
            return GatewayJSONResponse(
                kis.error(kis.TR_ID_MISMATCH_CODE, f"tr_id {request.headers.get('tr_id')!r} 오류: {tr_id} 필요"),
                status_code=500,
            )
        return None

    async def _quotation(self, request: Request, endpoint: str, tr_id: str) -> tuple[str, Response | None]:
        """What every KIS quotation call goes through: count it, injected faults, token, rate limit
        and tr_id, then the symbol. (symbol, None) to answer, or ("", the refusal)."""
        self.state.count(f"calls:{endpoint}")
        if (failure := await rest_faults(self.state, "kis")) is not None:
            return "", failure
        if (refused := self._gate(request, tr_id)) is not None:
            return "", refused
        code, bad = self._symbol_param(request)
        return (code or "", bad)

    def _symbol_param(self, request: Request) -> tuple[str | None, Response | None]:
        params = request.query_params
        market = params.get("FID_COND_MRKT_DIV_CODE")
        if market not in ("J", "UN", "NX"):
            return None, GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_COND_MRKT_DIV_CODE"))
        code = params.get("FID_INPUT_ISCD", "")
        if not self.state.day.has_symbol(code):
            return None, GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD FID_INPUT_ISCD ({code!r})"))
        return code, None

    @staticmethod
    def _hour_us(day: date, text: str | None) -> int | None:
        if text is None or len(text) != 6 or not text.isdigit():
            return None
        hour, minute, second = int(text[:2]), int(text[2:4]), int(text[4:])
        if hour > 23 or minute > 59 or second > 59:
            return None
        return to_us(datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SEOUL))

    def _summary(self, code: str, now_us: int) -> dict[str, str]:
        trades = self.state.day.trades(code, until_us=now_us)
        last = int(trades.px[-1]) if len(trades.px) else None
        acml = int(trades.cum[-1]) if len(trades.cum) else 0
        value = int((trades.px * trades.qty).sum())
        return kis.summary_output(self.state.day.name(code), trades.prev_close, last, acml, value)

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

    # -- quotations ---------------------------------------------------------------------------

    async def _today_quotation(self, request: Request, counter: str, tr_id: str):
        """`_quotation` for an endpoint of today's session: (code, today, FID_INPUT_HOUR_1 as epoch
        microseconds, None), or (..., the refusal) when the gate or the hour refuses the call."""
        code, refused = await self._quotation(request, counter, tr_id)
        if refused is not None:
            return code, None, None, refused
        today = self.state.day.day
        upto = self._hour_us(today, request.query_params.get("FID_INPUT_HOUR_1"))
        if upto is None:
            bad = kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_HOUR_1 (HHMMSS)")
            return code, today, None, GatewayJSONResponse(bad)
        return code, today, upto, None

    async def itemchart(self, request: Request) -> Response:
        code, today, upto, refused = await self._today_quotation(request, "kis_itemchart", kis.TR_ITEMCHART)
        if refused is not None:
            return refused
        now_us = self.state.clock.now_us()
        bars = self.state.bars_on(today, code, now_us)
        rows = self._rows(today, bars, upto, kis.ITEMCHART_PAGE)
        body = kis.envelope(kis.OK, output1=self._summary(code, now_us), output2=rows)
        return GatewayJSONResponse(body, tr_id=kis.TR_ITEMCHART)

    async def dailychart(self, request: Request) -> Response:
        code, refused = await self._quotation(request, "kis_dailychart", kis.TR_DAILYCHART)
        if refused is not None:
            return refused
        params = request.query_params
        try:
            day = datetime.strptime(params.get("FID_INPUT_DATE_1", ""), "%Y%m%d").date()
        except ValueError:
            return GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_DATE_1 (YYYYMMDD)"))
        upto = self._hour_us(day, params.get("FID_INPUT_HOUR_1"))
        if upto is None:
            return GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_INPUT_HOUR_1 (HHMMSS)"))
        if not SUPPORTED_FIRST_DAY <= day <= SUPPORTED_LAST_DAY:
            return GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD FID_INPUT_DATE_1 ({day:%Y%m%d})"))
        now_us = self.state.clock.now_us()
        rows: list[dict[str, str]] = []
        calendar = sim_calendar()
        include_past = params.get("FID_PW_DATA_INCU_YN", "N") == "Y"
        current: date | None = day
        while current is not None and current >= SUPPORTED_FIRST_DAY and len(rows) < kis.DAILYCHART_PAGE:
            if calendar.is_trading_day(current):
                bars = self.state.bars_on(current, code, now_us)
                rows += self._rows(current, bars, upto, kis.DAILYCHART_PAGE - len(rows))
            if not include_past:
                break
            current = calendar.previous_trading_day(current)
            if current is not None:
                upto = int(datetime.combine(current, datetime.max.time(), SEOUL).timestamp()) * US
        body = kis.envelope(kis.OK, output1=self._summary(code, now_us), output2=rows)
        return GatewayJSONResponse(body, tr_id=kis.TR_DAILYCHART)

    async def periodchart(self, request: Request) -> Response:
        """FHKST03010100 with FID_PERIOD_DIV_CODE=D: one row a trading day in [DATE_1, DATE_2] that had
        trades, newest first, at most 100; today's row is as of the clock (still growing in the session)."""
        code, refused = await self._quotation(request, "kis_periodchart", kis.TR_PERIODCHART)
        if refused is not None:
            return refused
        params = request.query_params
        bounds = []
        for name in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"):
            try:
                bounds.append(datetime.strptime(params.get(name, ""), "%Y%m%d").date())
            except ValueError:
                return GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, f"ERROR INPUT FIELD {name} (YYYYMMDD)"))
        if params.get("FID_PERIOD_DIV_CODE") != "D":
            # W/M/Y exist on the real API; the simulator answers daily rows only
            return GatewayJSONResponse(kis.error(kis.BAD_INPUT_CODE, "ERROR INPUT FIELD FID_PERIOD_DIV_CODE (D only here)"))
        day = self.state.day
        first, last = max(bounds[0], SUPPORTED_FIRST_DAY), min(bounds[1], day.day, SUPPORTED_LAST_DAY)
        now_us = self.state.clock.now_us()
        rows: list[dict[str, str]] = []
        days = sim_calendar().trading_days(first, last) if first <= last else []
        for current in reversed(days[-kis.PERIODCHART_PAGE:]):
            trades = self.state.trades_on(current, code, now_us)
            if len(trades.px):
                px = trades.px.astype(np.int64)
                rows.append(kis.day_row(f"{current:%Y%m%d}", int(px[0]), int(px.max()), int(px.min()), int(px[-1]),
                                        int(trades.cum[-1]) + self.state.config.after_hours_volume,
                                        int((px * trades.qty).sum()), int(trades.prev_close)))
        today_px = day.trades(code, until_us=now_us).px
        output1 = kis.period_summary_output(self._summary(code, now_us), code, today_px)
        body = kis.envelope(kis.OK, output1=output1, output2=rows)
        return GatewayJSONResponse(body, tr_id=kis.TR_PERIODCHART)

    async def trades(self, request: Request) -> Response:
        """FHPST01060000: today's trades at or before FID_INPUT_HOUR_1, 30 a call, newest first;
        tr_cont "M" while older trades remain."""
        code, today, upto, refused = await self._today_quotation(request, "kis_trades", kis_trades.TR_TRADES_TODAY)
        if refused is not None:
            return refused
        trades = self.state.day.trades(code, until_us=self.state.clock.now_us())
        rows, more = kis_trades.trade_rows(trades, upto)
        body = kis.envelope(kis.OK, output1=kis_trades.summary(self.state.day.name(code), trades), output2=rows)
        return GatewayJSONResponse(body, tr_id=kis_trades.TR_TRADES_TODAY, tr_cont="M" if more else "D")
