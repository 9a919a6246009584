"""The circuit breaker as a state machine: every legal transition walked, every illegal one refused."""

import itertools
import threading

import pytest

from stock_pipelines.brokers.model import BrokerAuthError, BrokerUnavailable
from stock_pipelines.resilience import (
    TRANSITIONS,
    CircuitBreaker,
    CircuitOpenError,
    IllegalTransition,
    MemoryStateStore,
    RedisStateStore,
    State,
)
from stock_pipelines.resilience.breaker import AUTOMATIC, MANUAL, check_transition

C, O, H, P = State.CLOSED, State.OPEN, State.HALF_OPEN, State.PERMANENT_OPEN


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker("kis", MemoryStateStore(), clock=clock)


def fail(breaker, times=1, error=None):
    for _ in range(times):
        state = breaker.record_failure(error or BrokerUnavailable("HTTP 503"))
    return state


def to_open(breaker):
    fail(breaker, 3)
    assert breaker.state is O


def to_half_open(breaker, clock):
    to_open(breaker)
    clock.advance(60)
    assert breaker.try_acquire() is True
    assert breaker.state is H


def to_permanent(breaker):
    breaker.record_failure(BrokerAuthError("no appkey"))
    assert breaker.state is P


# -- the whitelist -----------------------------------------------------------------------------

LEGAL = {
    (C, O, AUTOMATIC), (C, P, AUTOMATIC), (C, P, MANUAL),
    (O, H, AUTOMATIC), (O, P, AUTOMATIC), (O, P, MANUAL), (O, C, MANUAL),
    (H, C, AUTOMATIC), (H, C, MANUAL), (H, O, AUTOMATIC), (H, P, AUTOMATIC), (H, P, MANUAL),
    (P, C, MANUAL),
}


@pytest.mark.parametrize("current,target,by", list(itertools.product(State, State, (AUTOMATIC, MANUAL))))
def test_transition_whitelist(current, target, by):
    if (current, target, by) in LEGAL:
        check_transition(current, target, by)
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} -> {target.value}"):
            check_transition(current, target, by)


def test_whitelist_table_is_exactly_the_documented_one():
    assert {(a, b, who) for (a, b), whos in TRANSITIONS.items() for who in whos} == LEGAL


# -- every legal transition, driven through the public API --------------------------------------


def test_closed_to_open_after_three_consecutive_failures(breaker):
    fail(breaker, 2)
    breaker.record_success()  # a success in between resets the count
    assert fail(breaker, 2) is C
    assert fail(breaker) is O
    snap = breaker.snapshot()
    assert snap.consecutive_failures == 3 and "3 consecutive failures" in snap.reason
    assert [(h["from"], h["to"]) for h in snap.history] == [("CLOSED", "OPEN")]


def test_open_refuses_calls_until_60_s_then_half_open_allows_a_single_trial(breaker, clock):
    to_open(breaker)
    clock.advance(59.9)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(lambda: "never")
    assert refused.value.state is O and refused.value.retry_at == pytest.approx(clock.now + 0.1)
    clock.advance(0.1)
    assert breaker.try_acquire() is True and breaker.state is H
    assert breaker.try_acquire() is False  # one trial at a time


def test_half_open_success_closes(breaker, clock):
    to_half_open(breaker, clock)
    assert breaker.record_success() is C
    assert breaker.snapshot().consecutive_failures == 0
    assert breaker.call(lambda: 42) == 42


def test_half_open_failure_opens_again_for_another_60_s(breaker, clock):
    to_half_open(breaker, clock)
    assert fail(breaker) is O
    assert breaker.snapshot().opened_at == clock.now
    clock.advance(30)
    assert breaker.try_acquire() is False


def test_ten_consecutive_failures_end_in_permanent_open_which_never_closes_by_itself(breaker, clock):
    to_open(breaker)  # 3 failures
    for failures in range(4, 10):
        clock.advance(60)
        assert breaker.try_acquire() is True
        assert fail(breaker) is O, failures
    clock.advance(60)
    assert breaker.try_acquire() is True
    assert fail(breaker) is P  # the 10th
    clock.advance(10 * 86400)
    assert breaker.try_acquire() is False
    with pytest.raises(CircuitOpenError, match="only after a person resets it"):
        breaker.call(lambda: None)
    assert fail(breaker) is P and breaker.record_success() is P


def test_permanent_threshold_also_applies_without_breaker_opening_first(clock):
    breaker = CircuitBreaker("kis", MemoryStateStore(), clock=clock, failure_threshold=10)
    assert fail(breaker, 9) is C
    assert fail(breaker) is P


def test_authorization_failure_goes_permanent_from_closed_open_and_half_open(clock):
    closed = CircuitBreaker("a", MemoryStateStore(), clock=clock)
    with pytest.raises(BrokerAuthError):
        closed.call(lambda: (_ for _ in ()).throw(BrokerAuthError("KIS credentials missing")))
    assert closed.state is P and "authorization failure" in closed.snapshot().reason

    opened = CircuitBreaker("b", MemoryStateStore(), clock=clock)
    to_open(opened)
    assert opened.trip_permanently("preflight: KIS_APP_KEY is not set").state is P

    half = CircuitBreaker("c", MemoryStateStore(), clock=clock)
    to_half_open(half, clock)
    assert half.record_failure(authorization=True) is P


def test_a_person_can_trip_a_closed_breaker(breaker):
    snap = breaker.trip_permanently("broker maintenance window", by="alice")
    assert snap.state is P and snap.changed_by == "alice"


@pytest.mark.parametrize("reach", ["open", "half_open", "permanent"])
def test_a_person_resets_to_closed_with_a_reason(breaker, clock, reach):
    {"open": lambda: to_open(breaker), "half_open": lambda: to_half_open(breaker, clock),
     "permanent": lambda: to_permanent(breaker)}[reach]()
    with pytest.raises(ValueError, match="reason"):
        breaker.reset("alice", " ")
    with pytest.raises(ValueError, match="person"):
        breaker.reset(AUTOMATIC, "because")
    snap = breaker.reset("alice", "new app key deployed")
    assert snap.state is C and snap.consecutive_failures == 0 and snap.changed_by == "alice"
    assert snap.history[-1]["by"] == "alice" and snap.history[-1]["reason"] == "new app key deployed"


def test_resetting_a_closed_breaker_is_illegal(breaker):
    with pytest.raises(IllegalTransition, match="manual transition CLOSED -> CLOSED"):
        breaker.reset("alice", "just in case")


def test_a_trial_whose_worker_died_is_replaced_after_the_trial_timeout(breaker, clock):
    to_half_open(breaker, clock)
    clock.advance(59)
    assert breaker.try_acquire() is False
    clock.advance(1)
    assert breaker.try_acquire() is True


def test_errors_that_do_not_count_leave_the_breaker_closed(clock):
    breaker = CircuitBreaker("kis", MemoryStateStore(), clock=clock,
                             counts_as_failure=lambda error: not isinstance(error, KeyError))
    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["missing"])
    assert breaker.state is C


# -- persistence in Redis ----------------------------------------------------------------------


def test_state_survives_a_daemon_restart_and_concurrent_failures_all_count(redis_server, clock):
    client = redis_server.client()
    first = CircuitBreaker("kis", RedisStateStore(client), clock=clock, failure_threshold=50,
                           permanent_threshold=100)
    threads = [threading.Thread(target=fail, args=(first, 5)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert first.snapshot().consecutive_failures == 20  # optimistic transactions lose no update

    restarted = CircuitBreaker("kis", RedisStateStore(redis_server.client()), clock=clock)
    to_permanent(restarted)
    again = CircuitBreaker("kis", RedisStateStore(redis_server.client()), clock=clock)
    assert again.state is P and again.try_acquire() is False
    assert client.exists("sp:governance:breaker:kis") and client.ttl("sp:governance:breaker:kis") == -1
