"""What every broker client does the same way: send, classify transport failures, read JSON, retry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import httpx
import tenacity

from stock_pipelines.brokers.model import BrokerAuthError, BrokerError, BrokerRateLimited, BrokerUnavailable
from stock_pipelines.resilience.backoff import CALL_BACKOFF, retrying


def retry_policy(max_attempts: int, retries: Counter[str]) -> tenacity.Retrying:
    """The resilience package's full-jitter call backoff, on what a retry can fix (rate limit,
    5xx, timeouts; never refused credentials); each retry counted by error class in `retries`,
    so a run reports why it spent calls."""
    return retrying(
        max_attempts,
        backoff=CALL_BACKOFF,
        retry_on=lambda error: isinstance(error, BrokerRateLimited | BrokerUnavailable),
        on_retry=lambda error: retries.update([type(error).__name__]),
    )


def send(request: Callable[[], httpx.Response], what: str) -> httpx.Response:
    """Run one HTTP request; a timeout or a broken connection becomes BrokerUnavailable (retryable)."""
    try:
        return request()
    except httpx.TimeoutException as error:
        raise BrokerUnavailable(f"{what}: timed out ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise BrokerUnavailable(f"{what}: {type(error).__name__}") from None


def json_body(response: httpx.Response, what: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        if response.status_code >= 500:
            raise BrokerUnavailable(f"{what}: HTTP {response.status_code}, not JSON") from None
        raise BrokerError(f"{what}: HTTP {response.status_code}, body is not JSON") from None
    if not isinstance(body, dict):
        raise BrokerError(f"{what}: reply is a JSON {type(body).__name__}, expected an object")
    return body


def env_pair(env: Mapping[str, str | None], broker: str, key_name: str, secret_name: str) -> tuple[str, str]:
    """Two credentials from `env` (variable name -> value), or one error naming every variable
    that is unset."""
    values = {name: env.get(name) for name in (key_name, secret_name)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise BrokerAuthError(f"{broker} credentials missing: set {' and '.join(missing)} in the environment")
    return str(values[key_name]), str(values[secret_name])
