"""The simulated Kiwoom REST API: token, the ka10080 minute chart and the ka10079 tick chart
(`kiwoom_trades`), with `cont-yn`/`next-key` continuation. Wire format: `kiwoom_protocol`."""

from __future__ import annotations

import time
from datetime import date, datetime

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock_pipelines.market import SEOUL, SUPPORTED_FIRST_DAY, SUPPORTED_LAST_DAY
from stock_pipelines.sim import kiwoom_protocol as kiwoom
from stock_pipelines.sim import kiwoom_trades
from stock_pipelines.sim.day import MinuteBars, symbol_history_day
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.rest_gate import TokenBook, WindowLimiter, credentials_refusal, json_body, rest_faults
from stock_pipelines.sim.sessions import sim_calendar


class KiwoomRest:
    def __init__(self, state: ExchangeState) -> None:
        self.state = state
        self.tokens = TokenBook(state.config.token_ttl_s, state.config.token_interval_s)
        self.limiter = WindowLimiter(state.config.kiwoom_rate_limit)

    def routes(self) -> list[Route]:
        return [
            Route(kiwoom.TOKEN_PATH, self.token, methods=["POST"]),
            Route(kiwoom.CHART_PATH, self.chart, methods=["POST"]),
        ]

    async def token(self, request: Request) -> Response:
        self.state.count("calls:kiwoom_token")
        if (failure := await rest_faults(self.state, "kiwoom", quotation=False)) is not None:
            return failure
        body = await json_body(request)
        if body is None or body.get("grant_type") != "client_credentials":
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "grant_type 오류"), status_code=400)
        refused = credentials_refusal(self.state.config.credentials, body.get("appkey"), body.get("secretkey"))
        if refused is not None:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_CREDENTIALS_CODE, refused[1]), status_code=403)
        if not self.tokens.issue_allowed(body["appkey"]):
            self.state.count("token_refused")
            return JSONResponse(kiwoom.reply(5, "토큰 발급 요청이 너무 잦습니다"), status_code=429)
        token, expires = self.tokens.issue(body["appkey"])
        self.state.count("tokens_issued")
        expires_dt = datetime.fromtimestamp(expires, SEOUL).strftime("%Y%m%d%H%M%S")
        return JSONResponse(kiwoom.reply(expires_dt=expires_dt, token_type="bearer", token=token))

    def _history_days(self, base_day: date) -> list[date]:
        """`base_day` (at most today) and `history_days` trading days before it, newest first."""
        calendar = sim_calendar()
        days: list[date] = []
        current: date | None = min(base_day, self.state.day.day)
        if not calendar.is_trading_day(current):
            current = calendar.previous_trading_day(current)
        while current is not None and len(days) <= self.state.config.history_days and current >= SUPPORTED_FIRST_DAY:
            days.append(current)
            current = calendar.previous_trading_day(current)
        return days

    def _history(self, code: str, now_us: int, base_day: date) -> list[tuple[date, MinuteBars]]:
        return [(d, self.state.bars_on(d, code, now_us)) for d in self._history_days(base_day)]

    async def chart(self, request: Request) -> Response:
        state = self.state
        state.count("calls:kiwoom_chart")
        if (failure := await rest_faults(state, "kiwoom")) is not None:
            return failure
        auth = request.headers.get("authorization", "")
        token = self.tokens.get(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
        if token is None or time.time() >= token.expires_at:
            state.count("unauthorized")
            return JSONResponse(kiwoom.reply(kiwoom.TOKEN_INVALID_CODE, kiwoom.TOKEN_INVALID_MSG), status_code=401)
        if not self.limiter.allow(token.app_key):
            state.count("rate_limited")
            return JSONResponse(kiwoom.reply(kiwoom.RATE_LIMIT_CODE, kiwoom.RATE_LIMIT_MSG), status_code=429)
        api_id = request.headers.get("api-id")
        if api_id not in (kiwoom.MINUTE_CHART_API_ID, kiwoom_trades.TICK_CHART_API_ID):
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "api-id 오류: ka10080, ka10079만 지원"),
                                status_code=400)
        body = await json_body(request) or {}
        code = str(body.get("stk_cd", ""))
        if not state.day.has_symbol(code):
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, f"종목코드 오류: {code!r}"))
        if api_id == kiwoom_trades.TICK_CHART_API_ID:
            return self._tick_chart(request, code, body)
        if str(body.get("tic_scope", "1")) != "1":
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "tic_scope: 시뮬레이터는 1분봉만 지원"))
        try:
            base_day = datetime.strptime(str(body["base_dt"]), "%Y%m%d").date() if body.get("base_dt") else state.day.day
        except ValueError:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "base_dt 오류 (YYYYMMDD)"))
        if not SUPPORTED_FIRST_DAY <= base_day <= SUPPORTED_LAST_DAY:
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, f"base_dt 범위 오류: {base_day:%Y%m%d}"))
        now_us = state.clock.now_us()
        rank = state.day.symbol_index(code)
        cursor = request.headers.get("next-key", "") if request.headers.get("cont-yn") == "Y" else ""
        rows: list[dict[str, str]] = []
        more = False
        for day, bars in self._history(code, now_us, base_day):
            prev_close = (
                state.day.trades(code).prev_close if day == state.day.day
                else symbol_history_day(day, state.config.seed, code, rank, state.config.activity).prev_close
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

    def _tick_chart(self, request: Request, code: str, body: dict) -> Response:
        """ka10079 with tic_scope 1: one row a trade, newest first, 900 a call."""
        state = self.state
        state.count("calls:kiwoom_ticks")
        if str(body.get("tic_scope", "")) != "1":
            return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "tic_scope: 시뮬레이터는 1틱만 지원"))
        cursor = None
        if request.headers.get("cont-yn") == "Y":
            cursor = kiwoom_trades.parse_key(request.headers.get("next-key", ""))
            if cursor is None:
                return JSONResponse(kiwoom.reply(kiwoom.BAD_INPUT_CODE, "next-key 오류"))
        now_us = state.clock.now_us()
        days = [(d, state.trades_on(d, code, now_us)) for d in self._history_days(state.day.day)]
        rows, next_key = kiwoom_trades.tick_page(days, cursor)
        headers = {"api-id": kiwoom_trades.TICK_CHART_API_ID, "cont-yn": "Y" if next_key else "N", "next-key": next_key}
        reply = kiwoom.reply(stk_cd=code, last_tic_cnt="", **{kiwoom_trades.ROWS_KEY: rows})
        return JSONResponse(reply, headers=headers)
