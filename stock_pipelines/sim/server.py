"""The simulated exchange: one Starlette app over one `ExchangeState`, composed of an API a module.

- `kis_rest`: KIS REST (token, approval key, minute and daily bars);
- `kis_websocket`: KIS WebSocket trades (H0STCNT0);
- `kiwoom_rest`: Kiwoom REST (token, ka10080 minute chart);
- `kiwoom_websocket`: Kiwoom real-time trades (LOGIN, REG of type 0B, PING);
- `admin_api`: faults, clock, counters, token expiry.

Market data runs on the simulated clock; token and rate-limit rules on the wall clock, as at the broker.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from stock_pipelines.sim.admin_api import AdminApi
from stock_pipelines.sim.exchange_config import ExchangeConfig
from stock_pipelines.sim.exchange_state import ExchangeState
from stock_pipelines.sim.kis_rest import KisRest
from stock_pipelines.sim.kis_websocket import KisWebSocket
from stock_pipelines.sim.kiwoom_rest import KiwoomRest
from stock_pipelines.sim.kiwoom_websocket import KiwoomWebSocket


class Exchange:
    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.state = state = ExchangeState(config or ExchangeConfig())
        self.config, self.clock, self.faults = state.config, state.clock, state.faults
        self.kis_rest = KisRest(state)
        self.kis_websocket = KisWebSocket(state, self.kis_rest.approval_keys)
        self.kiwoom_rest = KiwoomRest(state)
        self.kiwoom_websocket = KiwoomWebSocket(state, self.kiwoom_rest.tokens)
        self.admin = AdminApi(state, [self.kis_rest.tokens, self.kiwoom_rest.tokens],
                              open_sessions=lambda: len(self.kis_websocket.sessions)
                              + len(self.kiwoom_websocket.sessions))
        self.app = Starlette(routes=[
            Route("/health", health),
            *self.kis_rest.routes(),
            *self.kis_websocket.routes(),
            *self.kiwoom_rest.routes(),
            *self.kiwoom_websocket.routes(),
            *self.admin.routes(),
        ])


    @property
    def day(self):
        """Today's `SimDay` by the exchange clock."""
        return self.state.day


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")
