"""A broker's credentials refusals, read from its breaker's history (the breaker's own transitions)."""

from stock_pipelines.brokers.model import BrokerAuthError, BrokerUnavailable
from stock_pipelines.resilience.breaker import CircuitBreaker
from stock_pipelines.resilience.refusals import latest_refusal
from stock_pipelines.resilience.state_store import MemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def breaker() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("broker:kis", MemoryStateStore(), clock=clock, open_for=5.0), clock


def test_a_refusal_lasts_from_the_authorization_failure_to_a_persons_reset():
    kis, clock = breaker()
    assert latest_refusal(kis.snapshot()) is None
    kis.record_failure(BrokerAuthError("EGW00103 invalid appkey"))
    refusal = latest_refusal(kis.snapshot())
    assert refusal.refused_at == 1_000.0 and refusal.resumed_at is None
    assert refusal.reason.startswith("authorization failure (BrokerAuthError: EGW00103")
    assert refusal.covers(1_200.0, 1_300.0)  # still refused: every later run met it
    clock.now = 2_000.0
    kis.reset("ops-kim", "new app key")
    resumed = latest_refusal(kis.snapshot())
    assert (resumed.refused_at, resumed.resumed_at, resumed.resumed_by) == (1_000.0, 2_000.0, "ops-kim")
    assert resumed.covers(900.0, 1_000.0) and resumed.covers(1_500.0, 2_500.0)
    assert not resumed.covers(800.0, 999.0) and not resumed.covers(2_001.0, 2_100.0)


def test_the_pre_flights_missing_key_is_a_refusal_and_ten_failures_are_not():
    kis, clock = breaker()
    kis.trip_permanently("pre-flight: KIS_APP_KEY is not set")
    clock.now = 1_100.0
    kis.reset("ops-kim", "key set")
    assert latest_refusal(kis.snapshot()).resumed_at == 1_100.0
    for _ in range(10):  # the broker down, not the key: PERMANENT_OPEN, but no refusal
        clock.now += 6.0
        kis.try_acquire()
        kis.record_failure(BrokerUnavailable("HTTP 500"))
    assert kis.snapshot().reason.startswith("10 consecutive failures")
    assert latest_refusal(kis.snapshot()).refused_at == 1_000.0  # still the pre-flight's, resumed


def test_the_latest_refusal_wins():
    kis, clock = breaker()
    kis.record_failure(BrokerAuthError("refused"))
    clock.now = 1_100.0
    kis.reset("ops-kim", "fixed")
    clock.now = 1_200.0
    kis.record_failure(BrokerAuthError("refused again"))
    refusal = latest_refusal(kis.snapshot())
    assert refusal.refused_at == 1_200.0 and refusal.resumed_at is None
