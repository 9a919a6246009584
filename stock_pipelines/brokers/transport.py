"""What every broker client does the same way: send, classify transport failures, read JSON, retry."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx
import tenacity

from stock_pipelines.brokers.model import (
    BrokerAuthError,
    BrokerError,
    BrokerRateLimited,
    BrokerUnavailable,
    RateLimiter,
)
from stock_pipelines.brokers.tokens import TokenCache
from stock_pipelines.ops import clock
from stock_pipelines.resilience.backoff import CALL_BACKOFF, retrying


class AppCredentials(Protocol):
    app_key: str


class BrokerRestClient:
    """What a broker's REST client holds: its endpoint, credentials, token cache, the shared rate
    limiter and its call counts. Subclasses name the broker (`name`, the token cache's too)."""

    name: str

    def __init__(
        self,
        base_url: str,
        credentials: AppCredentials,
        limiter: RateLimiter,
        token_dir: Path,
        today: Callable[[], datetime] = clock.now,
        http: httpx.Client | None = None,
        max_attempts: int = 6,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.limiter = limiter
        self.now = today
        self.http = http or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self.tokens = TokenCache(token_dir, self.name, credentials.app_key)
        self.max_attempts = max_attempts
        self.calls = 0  # every HTTP request to a data endpoint, retries included
        self.retries: Counter[str] = Counter()  # retried errors by class
        self._lock = threading.Lock()  # the executor calls one client from several threads

    def send_counted(self, request: Callable[[], httpx.Response], what: str) -> httpx.Response:
        """One data request, counted in `calls`, in a slot of the shared rate limit held until
        the reply is in (resilience.rate_limit)."""
        with self.limiter.slot(timeout=60):
            with self._lock:
                self.calls += 1
            return send(request, what)


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
