"""The broker feeds a collector can stream from, behind one small interface, so the runner and
the failover speak to KIS (`kis_session`, H0STCNT0) and Kiwoom (`kiwoom_session`, 0B) alike:
the credential a session needs, what to send after connecting, what an incoming message is, and
the trades a data message carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from websockets.asyncio.client import ClientConnection

from stock_pipelines.collector import kis_session, kiwoom_session
from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.collector.frames import is_data
from stock_pipelines.collector.pipeline import Decoder, kis_frame
from stock_pipelines.market import SEOUL

DATA, PING, ACK, REFUSED, CONTROL, BAD = "data", "ping", "ack", "refused", "control", "bad"


@dataclass(frozen=True)
class Incoming:
    """What one message from the broker is."""

    kind: str  # DATA, PING (echo it as received), ACK, REFUSED, CONTROL (anything else) or BAD
    symbols: tuple[str, ...] | None = None  # ACK: the codes acknowledged; None: the whole request
    code: str | None = None  # REFUSED: the broker's code and message
    text: str | None = None
    symbol: str | None = None
    credential_refused: bool = False  # REFUSED because the credential is no longer valid


class Feed(Protocol):
    broker: str

    async def credential(self, source: FeedSource, key: AppKey) -> str: ...

    def forget(self, source: FeedSource, key: AppKey) -> None: ...

    async def start(self, ws: ClientConnection, credential: str) -> None: ...

    def subscribe_messages(self, credential: str, codes: tuple[str, ...]) -> list[str]: ...

    def read(self, message: str) -> Incoming: ...

    def decoder(self, now_s: float) -> Decoder: ...


class CredentialStore(Protocol):
    async def get(self, source: FeedSource, key: AppKey) -> str: ...

    def forget(self, source: FeedSource, key: AppKey) -> None: ...


class _StoredCredentials:
    """A feed's credentials, fetched once per (source, app key) by its store and kept until refused."""

    def __init__(self, store: CredentialStore) -> None:
        self.store = store

    async def credential(self, source: FeedSource, key: AppKey) -> str:
        return await self.store.get(source, key)

    def forget(self, source: FeedSource, key: AppKey) -> None:
        self.store.forget(source, key)


class KisFeed(_StoredCredentials):
    broker = "kis"

    async def start(self, ws: ClientConnection, credential: str) -> None:
        return None  # KIS sends the approval key with every subscribe message

    def subscribe_messages(self, credential: str, codes: tuple[str, ...]) -> list[str]:
        return [kis_session.subscribe_message(credential, code) for code in codes]

    def read(self, message: str) -> Incoming:
        if is_data(message):
            return Incoming(DATA)
        header, body = kis_session.control_parts(message)
        if not header and not body:
            return Incoming(BAD)
        if header.get("tr_id") == "PINGPONG":
            return Incoming(PING)
        code, tr_key = body.get("msg_cd"), header.get("tr_key")
        if code in kis_session.OK_CODES:
            return Incoming(ACK, symbols=(tr_key,))
        if body.get("rt_cd") not in (None, "0"):
            return Incoming(REFUSED, code=code, text=body.get("msg1"), symbol=tr_key,
                            credential_refused=code == "OPSP0011")  # approval key unknown to the server
        return Incoming(CONTROL)

    def decoder(self, now_s: float) -> Decoder:
        return kis_frame


class KiwoomFeed(_StoredCredentials):
    broker = "kiwoom"

    async def start(self, ws: ClientConnection, credential: str) -> None:
        await kiwoom_session.login(ws, credential)

    def subscribe_messages(self, credential: str, codes: tuple[str, ...]) -> list[str]:
        return [kiwoom_session.register_message(codes)]

    def read(self, message: str) -> Incoming:
        reply = kiwoom_session.packet(message)
        trnm = reply.get("trnm")
        if trnm is None:
            return Incoming(BAD)
        if trnm == "REAL":
            return Incoming(DATA)
        if trnm == "PING":
            return Incoming(PING)
        code = kiwoom_session.return_code(reply)
        if code != 0:
            return Incoming(REFUSED, code=str(reply.get("return_code")), text=reply.get("return_msg"),
                            credential_refused=code in kiwoom_session.TOKEN_REFUSED_CODES)
        if trnm == "REG":
            return Incoming(ACK, symbols=None)
        return Incoming(CONTROL)

    def decoder(self, now_s: float) -> Decoder:
        day = datetime.fromtimestamp(now_s, UTC).astimezone(SEOUL).date()
        return lambda message: kiwoom_session.parse_real(message, day)


class Feeds:
    """The collector's feeds, one a broker, with the credentials they need (Kiwoom tokens through
    the token cache in `token_dir` when given)."""

    def __init__(self, token_dir: Path | None = None) -> None:
        self.approvals = kis_session.ApprovalKeys()
        self.tokens = kiwoom_session.KiwoomTokens(token_dir)
        self._feeds: dict[str, Feed] = {"kis": KisFeed(self.approvals), "kiwoom": KiwoomFeed(self.tokens)}

    def open(self, timeout_s: float) -> None:
        self.approvals.open(timeout_s)
        self.tokens.open(timeout_s)

    async def aclose(self) -> None:
        await self.approvals.aclose()
        await self.tokens.aclose()

    def of(self, source: FeedSource) -> Feed:
        return self._feeds[source.broker]
