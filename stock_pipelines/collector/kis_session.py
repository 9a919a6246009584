"""One KIS H0STCNT0 WebSocket session as the collector opens it: the approval key, the connection,
subscribe messages and control replies, and `LinkError` for a session worth reconnecting."""

from __future__ import annotations

import json

import httpx
from websockets.asyncio.client import connect

from stock_pipelines.collector.config import AppKey, FeedSource

OK_CODES = ("OPSP0000", "OPSP0002")  # subscribed, already subscribed


class LinkError(Exception):
    """A connection failed in a way worth a reconnect; `reason` is a short label for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def open_session(source: FeedSource, timeout_s: float) -> connect:
    return connect(source.ws_url, open_timeout=timeout_s, ping_interval=None,
                   max_size=None, compression=None, close_timeout=1)


def subscribe_message(approval_key: str, code: str, subscribe: bool = True) -> str:
    return json.dumps({
        "header": {"approval_key": approval_key, "custtype": "P", "tr_type": "1" if subscribe else "2",
                   "content-type": "utf-8"},
        "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}},
    })


def control_parts(message: str) -> tuple[dict, dict]:
    """(header, body) of a control message; two empty dicts when it is not a JSON object."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return {}, {}
    if not isinstance(parsed, dict):
        return {}, {}
    header = parsed.get("header") if isinstance(parsed.get("header"), dict) else {}
    body = parsed.get("body") if isinstance(parsed.get("body"), dict) else {}
    return header, body


class ApprovalKeys:
    """WebSocket approval keys, one per (source, app key), fetched once and kept until refused."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], str] = {}
        self._http: httpx.AsyncClient | None = None

    def open(self, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def get(self, source: FeedSource, key: AppKey) -> str:
        cached = self._keys.get((source.name, key.app_key))
        if cached:
            return cached
        assert self._http is not None
        reply = await self._http.post(f"{source.base_url.rstrip('/')}/oauth2/Approval", json={
            "grant_type": "client_credentials", "appkey": key.app_key, "secretkey": key.app_secret})
        try:
            approval = reply.json().get("approval_key")
        except ValueError:
            approval = None
        if reply.status_code != 200 or not approval:
            raise LinkError("approval", f"{source.name} {key.label}: HTTP {reply.status_code}")
        self._keys[(source.name, key.app_key)] = approval
        return approval

    def forget(self, source: FeedSource, key: AppKey) -> None:
        """The server no longer knows this key: fetch a new one next time."""
        self._keys.pop((source.name, key.app_key), None)
