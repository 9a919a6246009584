"""Does the real-time feed answer? One test symbol subscribed on a KIS H0STCNT0 WebSocket source.

The probe does what a collector does at start (`collector.kis_session`): it asks for an approval
key, opens the session, subscribes the symbol, and waits for the subscribe acknowledgement and a
PINGPONG (which it echoes, as KIS expects), then unsubscribes. Any other outcome is a
`FeedProbeError` saying which step failed. The app key and secret never appear in a detail.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException

from stock_pipelines.collector.config import FeedSource
from stock_pipelines.collector.frames import is_data
from stock_pipelines.collector.kis_session import OK_CODES, control_parts, open_session, subscribe_message

DEFAULT_SYMBOL = "005930"
DEFAULT_TIMEOUT_S = 20.0  # KIS sends a PINGPONG about every 10 s


class FeedProbeError(RuntimeError):
    pass


def _approval_key(source: FeedSource, timeout_s: float) -> str:
    key = source.keys[0]
    try:
        reply = httpx.post(
            f"{source.base_url.rstrip('/')}/oauth2/Approval",
            json={"grant_type": "client_credentials", "appkey": key.app_key, "secretkey": key.app_secret},
            timeout=timeout_s,
        )
    except httpx.HTTPError as error:
        raise FeedProbeError(f"approval key: {type(error).__name__}") from None
    try:
        approval = reply.json().get("approval_key")
    except ValueError:
        approval = None
    if reply.status_code != 200 or not approval:
        raise FeedProbeError(f"approval key refused: HTTP {reply.status_code}")
    return approval


async def _probe(source: FeedSource, approval: str, symbol: str, timeout_s: float, started: float) -> str:
    acked = pinged = False
    step = "connect"
    try:
        async with asyncio.timeout(timeout_s):
            async with open_session(source, timeout_s) as ws:
                step = "subscribe acknowledgement"
                await ws.send(subscribe_message(approval, symbol))
                while not (acked and pinged):
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        message = message.decode("utf-8", errors="replace")
                    if is_data(message):
                        continue  # trades: the feed works; the probe still wants its replies
                    header, body = control_parts(message)
                    if header.get("tr_id") == "PINGPONG":
                        await ws.send(message)
                        pinged = True
                    elif header.get("tr_key") == symbol:
                        if body.get("msg_cd") not in OK_CODES:
                            raise FeedProbeError(
                                f"subscribe {symbol} refused: {body.get('msg_cd')} {body.get('msg1')}"
                            )
                        acked = True
                    step = "PINGPONG" if acked else "subscribe acknowledgement"
                await ws.send(subscribe_message(approval, symbol, subscribe=False))
    except TimeoutError:
        raise FeedProbeError(f"no {step} within {timeout_s:g} s") from None
    except ConnectionClosed as error:
        code = error.rcvd.code if error.rcvd else "none"
        raise FeedProbeError(f"the server closed the WebSocket (code {code}) before the {step}") from None
    except (OSError, WebSocketException) as error:
        raise FeedProbeError(f"{step}: {type(error).__name__}: {error}") from None
    return f"{symbol} subscribed and PINGPONG answered in {time.monotonic() - started:.1f} s"


def probe_kis_feed(source: FeedSource, symbol: str = DEFAULT_SYMBOL, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The probe's detail when the feed answered; FeedProbeError when it did not."""
    started = time.monotonic()
    approval = _approval_key(source, timeout_s)
    return asyncio.run(_probe(source, approval, symbol, timeout_s, started))
