"""Posting an alert to a webhook (Slack- and Discord-compatible JSON), with secrets scrubbed.

The webhook URL is passed in by the caller (the Dagster resource layer reads
`STOCK_PIPELINES_ALERT_WEBHOOK_URL`; no URL: alerts are only logged). The URL often embeds a
token, so it never appears in a log line or an error. Every text that goes into an alert passes
`scrub` first: URL credentials, tokens, app keys and secrets are replaced by `***`.

What is sent when, and how often, is `incidents` / `incident_store` / `alert_outbox`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import httpx

ENV_WEBHOOK = "STOCK_PIPELINES_ALERT_WEBHOOK_URL"
MASK = "***"
log = logging.getLogger(__name__)

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
# Slack / Discord webhook paths are the credential themselves
_WEBHOOK_PATH = re.compile(r"(hooks\.slack\.com/services|discord(?:app)?\.com/api/webhooks)/[^\s\"']+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_NAMES = (
    r"app_?key|app_?secret|secret_?key|secretkey|api_?key|access_?token|approval_?key|token|"
    r"password|passwd|secret|signature|sig|authorization"
)
# name=value, name: value, "name": "value" (query strings, headers, JSON, log lines)
_NAMED_SECRET = re.compile(
    rf"(?i)(?P<name>[\"']?\b(?:{_SECRET_NAMES})\b[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s\"'&,;}}]+)"
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without credentials: known secret values, URL user-info, webhook paths, bearer
    tokens and anything given as `token=...`, `appkey: ...`, `"appsecret": "..."` and the like."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _WEBHOOK_PATH.sub(lambda m: f"{m.group(1)}/{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _NAMED_SECRET.sub(lambda m: f"{m['name']}{MASK}", text)


def scrub_fields(fields: dict, secrets: Iterable[str] = ()) -> dict:
    secrets = tuple(secrets)
    return {str(k): scrub(str(v), secrets) for k, v in fields.items()}


class WebhookError(RuntimeError):
    """The webhook did not take the alert; the message never contains the URL."""


class WebhookSender:
    """One POST per alert. `url` empty: the alert is logged only and counts as delivered."""

    def __init__(self, url: str | None, timeout: float = 5.0, secrets: Iterable[str] = ()) -> None:
        self.url = url or ""
        self.timeout = timeout
        self.secrets = (*secrets, self.url)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def post(self, body: dict) -> None:
        log.warning("alert: %s", body.get("text", ""))
        if not self.url:
            return
        try:
            response = httpx.post(self.url, json=body, timeout=self.timeout)
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            raise WebhookError(f"webhook answered HTTP {error.response.status_code}") from None
        except httpx.HTTPError as error:
            raise WebhookError(f"webhook failed: {type(error).__name__}") from None
