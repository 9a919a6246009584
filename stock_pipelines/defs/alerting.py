"""The alert webhook as a resource: the URL and the secrets to scrub come from the environment
here, when a sensor or job builds the sender, and reach the domain code as values only."""

from __future__ import annotations

import re

import dagster as dg
from pydantic import Field

from stock_pipelines import settings
from stock_pipelines.ops.alerts import ENV_WEBHOOK, WebhookSender

# Variables whose values must never reach a webhook (app keys and secrets of any broker or
# collector key, tokens, passwords); `scrub` also removes them by pattern, this catches the
# values wherever they appear.
_SECRET_VARS = re.compile(r"(APP_?KEY|APP_?SECRET|SECRET_?KEY|TOKEN|PASSWORD|WEBHOOK_URL)", re.IGNORECASE)


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: `STOCK_PIPELINES_ALERT_WEBHOOK_URL` (read through `dg.EnvVar` when the
    sender is built, never bound in config); unset: alerts are logged only."""

    timeout_s: float = Field(default=5.0, description="seconds one webhook POST may take")

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for name, v in settings.environment().items() if v and _SECRET_VARS.search(name))

    def sender(self) -> WebhookSender:
        url = dg.EnvVar(ENV_WEBHOOK).get_value() or ""
        return WebhookSender(url, self.timeout_s, self.secrets())


@dg.definitions
def alert_bindings() -> dg.Definitions:
    return dg.Definitions(resources={"alerts": AlertResource()})
