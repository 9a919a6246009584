"""What the simulated brokers' REST endpoints share: credentials, tokens, per-key rate limits,
injected faults and the JSON body.

Token validity, the token-issue interval and rate-limit windows run on the wall clock, as at
the broker.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from stock_pipelines.sim import kis_protocol as kis
from stock_pipelines.sim import kiwoom_protocol as kiwoom
from stock_pipelines.sim.exchange_state import ExchangeState


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


class TokenBook:
    """One broker's issued tokens, and at most one issue per app key every `interval_s`."""

    def __init__(self, ttl_s: float, interval_s: float) -> None:
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self.tokens: dict[str, Token] = {}
        self._last_issue: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue_allowed(self, app_key: str) -> bool:
        now = time.time()
        with self._lock:
            last = self._last_issue.get(app_key)
            if last is not None and now - last < self.interval_s:
                return False
            self._last_issue[app_key] = now
            return True

    def issue(self, app_key: str) -> tuple[str, float]:
        """A new token for `app_key` and its wall-clock expiry."""
        token = secrets.token_urlsafe(48)
        expires = time.time() + self.ttl_s
        self.tokens[token] = Token(app_key, expires)
        return token, expires

    def get(self, token: str) -> Token | None:
        return self.tokens.get(token)

    def expire_all(self) -> int:
        """Expire every token now and reset the issue interval; how many were expired."""
        for token in self.tokens.values():
            token.expires_at = 0.0
        self._last_issue.clear()
        return len(self.tokens)


def credentials_refusal(known: dict[str, str] | None, app_key: object, secret: object) -> tuple[str, str] | None:
    """None when the pair is accepted (`known` None accepts any), else the (code, message) to refuse it with."""
    if not isinstance(app_key, str) or not app_key:
        return kis.BAD_APPKEY
    if not isinstance(secret, str) or not secret:
        return kis.BAD_APPSECRET
    if known is not None:
        if app_key not in known:
            return kis.BAD_APPKEY
        if not secrets.compare_digest(known[app_key], secret):
            return kis.BAD_APPSECRET
    return None


async def rest_faults(state: ExchangeState, broker: str, quotation: bool = True) -> Response | None:
    """Injected latency or failure for this call; token endpoints only see latency and 500s."""
    for fault in state.faults.rest_hits(broker):
        if not quotation and fault.mode in ("egw00201", "unauthorized"):
            continue
        state.count(f"fault:{fault.mode}")
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


async def json_body(request: Request) -> dict | None:
    """The request's JSON object (an empty body is {}); None when it is not one."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
