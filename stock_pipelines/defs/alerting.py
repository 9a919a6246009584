"""The alert webhook as a resource. The secrets it scrubs are those of the broker resource bound
beside it (`BrokerResource.secrets`: the credentials the Dagster processes use), and the URL is
read when a sensor or job builds the sender; the domain code receives both as values only."""

import dagster as dg
from pydantic import Field

from stock_pipelines.defs.resources import BrokerResource
from stock_pipelines.ops.alerts import ENV_WEBHOOK, WebhookSender


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: `STOCK_PIPELINES_ALERT_WEBHOOK_URL` (read through `dg.EnvVar` when the
    sender is built, never bound in config); unset: alerts are logged only. `broker` is the
    broker resource whose secrets no alert may carry (`default_resources` binds the steps' own)."""

    broker: dg.ResourceDependency[BrokerResource]
    timeout_s: float = Field(default=5.0, description="seconds one webhook POST may take")
    webhook_url: str | None = Field(default=None, description="tests only")

    def secrets(self) -> tuple[str, ...]:
        return self.broker.secrets()

    def sender(self) -> WebhookSender:
        url = self.webhook_url if self.webhook_url is not None else dg.EnvVar(ENV_WEBHOOK).get_value()
        return WebhookSender(url or "", self.timeout_s, self.secrets())
