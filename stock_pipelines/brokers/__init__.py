"""Broker REST clients (KIS, Kiwoom) behind one protocol: minute bars of symbol S on day D in [t0, t1)."""

from stock_pipelines.brokers.model import (
    BAR_SCHEMA,
    BarFetch,
    BrokerAuthError,
    BrokerError,
    BrokerRateLimited,
    BrokerUnavailable,
    DayVolumeSource,
    MinuteBarSource,
)

__all__ = [
    "BAR_SCHEMA",
    "BarFetch",
    "BrokerAuthError",
    "BrokerError",
    "BrokerRateLimited",
    "BrokerUnavailable",
    "DayVolumeSource",
    "MinuteBarSource",
]
