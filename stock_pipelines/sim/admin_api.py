"""The simulated exchange's admin API (no broker protocol, no authentication): faults, the
clock, counters, what is served, and expiring every issued token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.faults import FaultError
from stock_pipelines.sim.rest_gate import TokenBook, json_body


class AdminApi:
    def __init__(
        self, state: ExchangeState, token_books: list[TokenBook], open_sessions: Callable[[], int]
    ) -> None:
        self.state = state
        self.token_books = token_books
        self.open_sessions = open_sessions  # WebSocket sessions open now, for the counters

    def routes(self) -> list[Route]:
        return [
            Route("/admin/faults", self.faults, methods=["GET", "POST"]),
            Route("/admin/clock", self.clock, methods=["GET", "POST"]),
            Route("/admin/stats", self.stats, methods=["GET"]),
            Route("/admin/info", self.info, methods=["GET"]),
            Route("/admin/tokens/expire", self.expire_tokens, methods=["POST"]),
        ]

    async def faults(self, request: Request) -> Response:
        faults = self.state.faults
        if request.method == "GET":
            return JSONResponse({"active": faults.describe()})
        body = await json_body(request)
        try:
            active = faults.apply(body if body is not None else {})
        except FaultError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        self.state.count("admin_fault_changes")
        return JSONResponse({"active": active})

    async def clock(self, request: Request) -> Response:
        clock = self.state.clock
        if request.method == "POST":
            body = await json_body(request)
            if body is None:
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            try:
                at = datetime.fromisoformat(body["at"]) if body.get("at") else None
                speed = float(body["speed"]) if body.get("speed") is not None else None
                night_speed = float(body["night_speed"]) if body.get("night_speed") is not None else None
                pinned = body.get("pinned")
                if pinned is not None and not isinstance(pinned, bool):
                    raise ValueError("pinned must be true or false")
                clock.set(at=at, speed=speed, pinned=pinned, night_speed=night_speed, overnight=body.get("overnight"))
            except (ValueError, TypeError) as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(clock.state())

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats_snapshot(ws_open=self.open_sessions()))

    async def info(self, request: Request) -> Response:
        day, config = self.state.day, self.state.config
        await asyncio.to_thread(day.build)
        session = day.session
        return JSONResponse(
            {
                "date": day.day.isoformat(),
                "seed": day.seed,
                "symbols": day.codes,
                "open": session.open.isoformat(),
                "close": session.close.isoformat(),
                "trades": len(day),
                "clock": self.state.clock.state(),
                "days_held": [d.isoformat() for d in self.state.days.held()],
                "day_cache": self.state.days.cap,
                "rate_limit": config.rate_limit,
                "kiwoom_rate_limit": config.kiwoom_rate_limit,
            }
        )

    async def expire_tokens(self, request: Request) -> Response:
        return JSONResponse({"expired": sum(book.expire_all() for book in self.token_books)})
