"""One Kiwoom real-time WebSocket session as the collector opens it: the REST access token,
LOGIN, REG of type 0B 주식체결 for the shard's codes, the PING echo, and the REAL records parsed
into the same trades the KIS path produces (`frames.Trade`).

Wire format (Kiwoom-Securities/Kiwoom-REST-API: kiwoom/core/ws_client.py, kiwoom/core/fid.py):
`{"trnm": "REAL", "data": [{"type": "0B", "item": "005930", "values": {"20": "HHMMSS",
"10": "+price", "15": "+qty|-qty", "13": "cum volume", ...}}]}`; prices carry the sign of the
change against the previous close, the quantity the side of the trade. A REAL message is read
record by record: a bad record is rejected with a reason (counted, written to the system stream)
and the good ones in the same message are kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection

from stock_pipelines.archive.record import is_valid_symbol
from stock_pipelines.brokers.tokens import Token, TokenCache
from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.collector.frames import (
    BAD_CUM,
    BAD_NUMBER,
    BAD_SYMBOL,
    BAD_TIME,
    NONPOSITIVE,
    NOT_A_FRAME,
    OTHER_TR_ID,
    FrameError,
    Trade,
)
from stock_pipelines.collector.kis_session import LinkError
from stock_pipelines.market import SEOUL

TRADE_TYPE = "0B"
F_TIME, F_PRICE, F_QTY, F_CUM = "20", "10", "15", "13"
TOKEN_REFUSED_CODES = {8003, 8005, 8006, 8031, 8103}  # invalid or expired token: fetch a new one
BAD_RECORD = "bad_record"  # a `data` entry that is not an object with `item` and `values`
US = 1_000_000


def login_message(token: str) -> str:
    return json.dumps({"trnm": "LOGIN", "token": token})


def register_message(codes: list[str] | tuple[str, ...], register: bool = True) -> str:
    """REG (keep what the session registered before: refresh "1") or REMOVE of 0B for `codes`."""
    return json.dumps({"trnm": "REG" if register else "REMOVE", "grp_no": "1", "refresh": "1",
                       "data": [{"item": list(codes), "type": [TRADE_TYPE]}]})


def packet(message: str) -> dict:
    """A control packet as a dict; empty when the message is not a JSON object."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def return_code(reply: dict) -> int:
    try:
        return int(reply.get("return_code", 0))
    except (TypeError, ValueError):
        return -1


_day_starts: dict[date, int] = {}


def _day_start_us(day: date) -> int:
    start = _day_starts.get(day)
    if start is None:
        start = _day_starts[day] = int(datetime(day.year, day.month, day.day, tzinfo=SEOUL).timestamp()) * US
    return start


def _unsigned(text: object, sym: str, what: str) -> int:
    """Kiwoom's signed numbers ("+71000", "-5"): the magnitude; FrameError when not a number."""
    if not isinstance(text, str) or not text.lstrip("+-").isdigit():
        raise FrameError(BAD_NUMBER, f"{sym} {what} {str(text)[:20]!r} is not a number")
    return int(text.lstrip("+-"))


def parse_record(entry: object, day: date) -> Trade:
    """One `data` entry of a REAL message as a trade executed on `day` (the record carries only
    HHMMSS: the day is the collector's Seoul date when it arrived)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
        raise FrameError(BAD_RECORD, f"not an object with values: {str(entry)[:60]}")
    if entry.get("type") != TRADE_TYPE:
        raise FrameError(OTHER_TR_ID, f"type {str(entry.get('type'))[:10]!r}")
    sym, values = entry.get("item"), entry["values"]
    if not is_valid_symbol(sym):
        raise FrameError(BAD_SYMBOL, repr(str(sym)[:20]))
    px = _unsigned(values.get(F_PRICE), sym, "price")
    qty = _unsigned(values.get(F_QTY), sym, "quantity")
    cum = _unsigned(values.get(F_CUM), sym, "cum volume")
    if px <= 0 or qty <= 0:
        raise FrameError(NONPOSITIVE, f"{sym} price {px} qty {qty}")
    if cum < qty:
        raise FrameError(BAD_CUM, f"{sym} cum {cum} < qty {qty}")
    hhmmss = values.get(F_TIME)
    if not (isinstance(hhmmss, str) and len(hhmmss) == 6 and hhmmss.isdigit()
            and int(hhmmss[:2]) < 24 and int(hhmmss[2:4]) < 60 and int(hhmmss[4:]) < 60):
        raise FrameError(BAD_TIME, f"{sym} {str(hhmmss)[:20]!r}")
    seconds = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:])
    return Trade(sym, _day_start_us(day) + seconds * US, px, qty, cum)


def parse_real(message: str, day: date) -> list[Trade | FrameError]:
    """Every record of a REAL message: a trade, or the FrameError that rejects that record alone.
    A message that is not a REAL packet with a list of records raises FrameError whole."""
    parsed = packet(message)
    if parsed.get("trnm") != "REAL" or not isinstance(parsed.get("data"), list):
        raise FrameError(NOT_A_FRAME, "expected a REAL packet with a data list")
    out: list[Trade | FrameError] = []
    for entry in parsed["data"]:
        try:
            out.append(parse_record(entry, day))
        except FrameError as error:
            out.append(error)
    return out


def issue_token(base_url: str, key: AppKey, timeout_s: float) -> Token:
    """A new REST access token (POST /oauth2/token); LinkError("token") naming the refusal."""
    with httpx.Client(timeout=timeout_s) as http:
        reply = http.post(f"{base_url.rstrip('/')}/oauth2/token", json={
            "grant_type": "client_credentials", "appkey": key.app_key, "secretkey": key.app_secret})
    body = packet(reply.text)
    token = body.get("token")
    if reply.status_code != 200 or return_code(body) != 0 or not token:
        raise LinkError("token", f"HTTP {reply.status_code} return_code {body.get('return_code')}")
    issued = time.time()
    try:
        expires = datetime.strptime(str(body["expires_dt"]), "%Y%m%d%H%M%S").replace(tzinfo=SEOUL).timestamp()
    except (KeyError, ValueError):
        expires = issued + 86_400
    return Token(value=str(token), expires_at=expires, issued_at=issued)


class KiwoomTokens:
    """Access tokens, one per (source, app key), issued once for all the collector's sessions and
    kept until the broker refuses one. With `token_dir` they go through the machine-wide
    `TokenCache` the REST clients use, so the collector, its start-up check and the recovery
    workers share one token instead of being refused for issuing too often."""

    def __init__(self, token_dir: Path | None = None) -> None:
        self.token_dir = token_dir
        self._tokens: dict[tuple[str, str], Token] = {}
        self._refused: dict[tuple[str, str], Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.timeout_s = 10.0

    def open(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def aclose(self) -> None:
        return None

    async def get(self, source: FeedSource, key: AppKey) -> str:
        slot = (source.name, key.app_key)
        async with self._locks.setdefault(slot, asyncio.Lock()):  # one issue for every session waiting
            cached = self._tokens.get(slot)
            if cached is None:
                cached = await asyncio.to_thread(self._issue, source, key, self._refused.get(slot))
                self._tokens[slot] = cached
            return cached.value

    def _issue(self, source: FeedSource, key: AppKey, refused: Token | None) -> Token:
        def issue() -> Token:
            return issue_token(source.base_url, key, self.timeout_s)
        if self.token_dir is None:
            return issue()
        return TokenCache(self.token_dir, "kiwoom", key.app_key).get(issue, refused=refused)

    def forget(self, source: FeedSource, key: AppKey) -> None:
        """The broker refused the token: issue another next time (not the same one again)."""
        slot = (source.name, key.app_key)
        refused = self._tokens.pop(slot, None)
        if refused is not None:
            self._refused[slot] = refused


async def login(ws: ClientConnection, token: str) -> None:
    """LOGIN and wait for its answer (echoing PINGs meanwhile); LinkError when refused."""
    await ws.send(login_message(token))
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        reply = packet(message)
        if reply.get("trnm") == "PING":
            await ws.send(message)
        elif reply.get("trnm") == "LOGIN":
            code = return_code(reply)
            if code != 0:
                reason = "unauthorized" if code in TOKEN_REFUSED_CODES else "login"
                raise LinkError(reason, f"LOGIN refused: {code} {str(reply.get('return_msg'))[:100]}")
            return
