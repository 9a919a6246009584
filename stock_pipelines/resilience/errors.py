"""Which failures are worth a retry, and which only a person can fix.

The broker clients raise `brokers.model` errors (BrokerRateLimited for KIS EGW00201 / Kiwoom
1700, BrokerUnavailable for 5xx and timeouts, BrokerAuthError for missing or refused
credentials); raw httpx errors and the builtin TimeoutError are understood too, so the policies
here also fit code that talks HTTP directly.
"""

from __future__ import annotations

import httpx

from stock_pipelines.brokers.model import BrokerAuthError, BrokerRateLimited, BrokerUnavailable

RATE_LIMIT_CODES = frozenset({"EGW00201", "1700"})  # KIS msg_cd, Kiwoom return_code


def is_retryable(error: BaseException) -> bool:
    """EGW00201 (and Kiwoom 1700), 5xx and timeouts: transient, worth a retry with backoff."""
    if isinstance(error, BrokerRateLimited | BrokerUnavailable | TimeoutError | httpx.TimeoutException):
        return True
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return str(getattr(error, "msg_cd", "")) in RATE_LIMIT_CODES


def is_authorization_failure(error: BaseException) -> bool:
    """Missing API key, refused or revoked credentials: retrying cannot help; a person must act."""
    if isinstance(error, BrokerAuthError | PermissionError):
        return True
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in (401, 403)
    return False
