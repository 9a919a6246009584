"""Does the Kiwoom real-time feed answer? One test symbol registered for 0B 주식체결.

The probe does what the collector's Kiwoom session does at start, through the same code
(`collector.feeds.KiwoomFeed`, `collector.kiwoom_session`): the REST access token (through the
machine-wide token cache when `token_dir` is given, so the probe does not issue a token of its
own every morning), LOGIN, REG of the symbol, then it waits for the REG acknowledgement and a
server PING (echoed), REMOVEs the symbol and closes. Any other outcome is a `FeedProbeError`
naming the failed step; neither the app key, the secret nor the token appear in a detail.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from stock_pipelines.collector.config import FeedSource
from stock_pipelines.collector.feeds import ACK, DATA, PING, REFUSED, KiwoomFeed
from stock_pipelines.collector.kis_session import LinkError
from stock_pipelines.collector.kiwoom_session import KiwoomTokens, register_message
from stock_pipelines.ops.feed_probe import DEFAULT_SYMBOL, DEFAULT_TIMEOUT_S, FeedProbeError, Step, probe_session


def _detail(error: LinkError) -> str:
    """What the broker answered, without the collector's reason label."""
    return str(error).removeprefix(f"{error.reason}: ")


async def _token(feed: KiwoomFeed, source: FeedSource) -> str:
    try:
        return await feed.credential(source, source.keys[0])
    except LinkError as error:  # the detail is the HTTP status and Kiwoom's return code
        raise FeedProbeError(f"access token refused: {_detail(error)}") from None
    except httpx.HTTPError as error:
        raise FeedProbeError(f"access token: {type(error).__name__}") from None


async def _probe(source: FeedSource, symbol: str, timeout_s: float, token_dir: Path | None) -> str:
    started = time.monotonic()
    tokens = KiwoomTokens(token_dir)
    tokens.open(timeout_s)
    feed = KiwoomFeed(tokens)
    token = await _token(feed, source)
    acked = pinged = False
    step = Step("connect")
    async with probe_session(source, step, timeout_s) as ws:
        step.name = "LOGIN"
        try:
            await feed.start(ws, token)
        except LinkError as error:
            raise FeedProbeError(_detail(error)) from None
        step.name = "REG acknowledgement"
        for message in feed.subscribe_messages(token, (symbol,)):
            await ws.send(message)
        while not (acked and pinged):
            message = await ws.recv()
            if isinstance(message, bytes):
                message = message.decode("utf-8", errors="replace")
            incoming = feed.read(message)
            if incoming.kind == DATA:
                continue  # trades: the feed works; the probe still wants its replies
            if incoming.kind == PING:
                await ws.send(message)
                pinged = True
            elif incoming.kind == REFUSED:
                raise FeedProbeError(f"REG {symbol} refused: {incoming.code} {incoming.text}")
            elif incoming.kind == ACK:
                acked = True
            step.name = "PING" if acked else "REG acknowledgement"
        await ws.send(register_message([symbol], register=False))
    return f"{symbol} registered and PING answered in {time.monotonic() - started:.1f} s"


def probe_kiwoom_feed(
    source: FeedSource, symbol: str = DEFAULT_SYMBOL, timeout_s: float = DEFAULT_TIMEOUT_S,
    token_dir: Path | None = None,
) -> str:
    """The probe's detail when the feed answered; FeedProbeError when it did not."""
    return asyncio.run(_probe(source, symbol, timeout_s, token_dir))
