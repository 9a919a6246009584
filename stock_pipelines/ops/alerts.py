"""Alerts to a webhook (Slack- and Discord-compatible JSON), sent once per event.

`STOCK_PIPELINES_ALERT_WEBHOOK_URL` (unset: alerts are only logged). The URL often embeds a
token, so it is read from the environment and never logged or put into metadata. The body
carries both `text` (Slack) and `content` (Discord). An alert with a `dedupe_key` is sent at
most once (a Redis ``SET NX`` marker, 7 days), so a sensor evaluating every 10 s does not page
every 10 s; a failed send clears the marker so the next evaluation tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import redis

from stock_pipelines import settings
from stock_pipelines.redis_conn import key

ENV_WEBHOOK = "STOCK_PIPELINES_ALERT_WEBHOOK_URL"
DEDUPE_TTL_S = 7 * 86_400
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertResult:
    sent: bool
    reason: str  # "sent", "duplicate", "no webhook configured", or the error


class Alerter:
    def __init__(self, client: redis.Redis | None, url: str | None = None, timeout: float = 5.0) -> None:
        self.client = client
        self.url = url if url is not None else settings.value(ENV_WEBHOOK) or ""
        self.timeout = timeout

    def send(
        self, kind: str, message: str, dedupe_key: str | None = None, fields: dict | None = None
    ) -> AlertResult:
        marker = key("alerts", kind, dedupe_key) if dedupe_key and self.client is not None else None
        if marker is not None:
            try:
                if not self.client.set(marker, "1", nx=True, ex=DEDUPE_TTL_S):
                    return AlertResult(False, "duplicate")
            except redis.RedisError as error:
                log.warning("alert dedupe marker unavailable (%s): sending anyway", type(error).__name__)
                marker = None
        text = f"[stock_pipelines] {kind}: {message}"
        log.warning("%s", text)
        if not self.url:
            return AlertResult(False, "no webhook configured")
        body = {"text": text, "content": text[:2000], "kind": kind, "fields": fields or {}}
        try:
            response = httpx.post(self.url, json=body, timeout=self.timeout)
            response.raise_for_status()
        except httpx.HTTPError as error:
            # the URL is a secret: report the error class and status only
            status = getattr(getattr(error, "response", None), "status_code", None)
            reason = f"webhook failed: {type(error).__name__}" + (f" HTTP {status}" if status else "")
            log.warning("%s", reason)
            if marker is not None:
                try:
                    self.client.delete(marker)
                except redis.RedisError:
                    pass
            return AlertResult(False, reason)
        return AlertResult(True, "sent")
