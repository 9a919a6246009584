import random

import httpx
import pytest

from stock_pipelines.brokers.model import BrokerAuthError, BrokerRateLimited, BrokerUnavailable
from stock_pipelines.resilience import (
    RECOVERY_BACKOFF,
    Backoff,
    is_authorization_failure,
    is_retryable,
    retrying,
)


def test_recovery_backoff_ceiling_doubles_from_5_s_to_10_minutes():
    assert [RECOVERY_BACKOFF.ceiling(n) for n in range(9)] == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert RECOVERY_BACKOFF.ceiling(10_000) == 600
    with pytest.raises(ValueError):
        Backoff(base=10, cap=5)


def test_full_jitter_is_uniform_below_the_ceiling_and_seedable():
    delays = [RECOVERY_BACKOFF.delay(3, random.Random(seed)) for seed in range(2000)]
    assert all(0 <= d <= 40 for d in delays)
    assert 18 < sum(delays) / len(delays) < 22  # uniform(0, 40) has mean 20
    assert min(delays) < 1 and max(delays) > 39  # full jitter: the whole range, not ceiling +- a bit
    assert [RECOVERY_BACKOFF.delay(n, random.Random(7)) for n in range(5)] == [
        RECOVERY_BACKOFF.delay(n, random.Random(7)) for n in range(5)
    ]


def response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://127.0.0.1/x"))


@pytest.mark.parametrize(
    "error,retry,auth",
    [
        (BrokerRateLimited("EGW00201"), True, False),
        (BrokerUnavailable("HTTP 502"), True, False),
        (TimeoutError(), True, False),
        (httpx.ReadTimeout("slow"), True, False),
        (httpx.HTTPStatusError("503", request=response(503).request, response=response(503)), True, False),
        (httpx.HTTPStatusError("404", request=response(404).request, response=response(404)), False, False),
        (httpx.HTTPStatusError("401", request=response(401).request, response=response(401)), False, True),
        (BrokerAuthError("no key"), False, True),
        (ValueError("bad symbol"), False, False),
    ],
)
def test_classification(error, retry, auth):
    assert is_retryable(error) is retry
    assert is_authorization_failure(error) is auth


def test_retrying_retries_transient_errors_with_bounded_jittered_sleeps():
    sleeps: list[float] = []
    outcomes = iter([BrokerRateLimited("EGW00201"), BrokerUnavailable("HTTP 500"), "bars"])

    def call():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = retrying(max_attempts=5, backoff=Backoff(0.5, 10), rng=random.Random(1), sleep=sleeps.append)
    for attempt in policy:
        with attempt:
            result = call()
    assert result == "bars"
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_retrying_gives_up_with_the_last_error_and_never_retries_auth_failures():
    sleeps: list[float] = []
    calls = []

    def always(error):
        calls.append(error)
        raise error

    with pytest.raises(BrokerUnavailable, match="HTTP 503"):
        for attempt in retrying(max_attempts=3, sleep=sleeps.append):
            with attempt:
                always(BrokerUnavailable("HTTP 503"))
    assert len(calls) == 3 and len(sleeps) == 2
    calls.clear()
    with pytest.raises(BrokerAuthError):
        for attempt in retrying(max_attempts=3, sleep=sleeps.append):
            with attempt:
                always(BrokerAuthError("revoked"))
    assert len(calls) == 1
