import random

import pytest

from stock_pipelines.resilience import (
    AUTO_RECOVERY,
    HEARTBEAT_MONITORING,
    PREFLIGHT,
    DormantGuard,
    FeatureFlags,
    FlagValueError,
    MemoryStateStore,
    RedisStateStore,
    State,
)


class FakeClock:
    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- dormant mode ------------------------------------------------------------------------------


def test_failed_recoveries_back_off_then_ten_in_a_row_make_it_dormant_until_a_person_resumes():
    clock = FakeClock()
    guard = DormantGuard(MemoryStateStore(), clock=clock, rng=random.Random(5))
    assert guard.decide().allowed
    for failures in range(1, 10):
        state = guard.record_recovery(False, "HTTP 500")
        ceiling = min(600, 5 * 2 ** (failures - 1))
        assert clock.now <= state.next_attempt_at <= clock.now + ceiling
        decision = guard.decide()
        assert not decision.allowed and "backing off" in decision.reason
        clock.now = state.next_attempt_at
        assert guard.decide().allowed
    state = guard.record_recovery(False, "HTTP 500")
    assert state.dormant and "10 consecutive failed recoveries" in state.reason
    clock.now += 86400
    decision = guard.decide()
    assert not decision.allowed and "a person must resume" in decision.reason
    with pytest.raises(ValueError, match="reason"):
        guard.resume("alice", "")
    resumed = guard.resume("alice", "broker fixed their gateway")
    assert not resumed.dormant and resumed.consecutive_failed_recoveries == 0 and resumed.resumed_by == "alice"
    assert guard.decide().allowed


def test_a_success_resets_the_count():
    guard = DormantGuard(MemoryStateStore(), clock=FakeClock())
    for _ in range(9):
        guard.record_recovery(False)
    guard.record_recovery(True)
    for _ in range(9):
        guard.record_recovery(False)
    assert not guard.state().dormant


def test_a_permanent_open_breaker_makes_it_dormant_and_it_survives_a_restart(redis_server):
    clock = FakeClock()
    guard = DormantGuard(RedisStateStore(redis_server.client()), clock=clock)
    assert guard.decide([("kis", State.OPEN), ("kiwoom", State.CLOSED)]).allowed
    decision = guard.decide([("kis", State.PERMANENT_OPEN)])
    assert not decision.allowed and "kis" in decision.reason
    restarted = DormantGuard(RedisStateStore(redis_server.client()), clock=clock)
    assert restarted.state().dormant and not restarted.decide().allowed
    restarted.resume("bob", "reset kis breaker after key rotation")
    assert guard.decide([("kis", State.CLOSED)]).allowed


# -- kill switches -----------------------------------------------------------------------------


def test_flags_default_on_and_either_source_can_switch_off(redis_server):
    client = redis_server.client()
    env: dict[str, str] = {}
    flags = FeatureFlags(client, env)
    assert flags.state(AUTO_RECOVERY).enabled and flags.state(AUTO_RECOVERY).source == "default"

    flags.set(AUTO_RECOVERY, False)  # run-time kill switch, read at the next evaluation
    assert flags.state(AUTO_RECOVERY).enabled is False and flags.state(AUTO_RECOVERY).source == "redis"
    flags.set(AUTO_RECOVERY, True)
    assert flags.enabled(AUTO_RECOVERY)

    env[HEARTBEAT_MONITORING] = "OFF"
    flags.set(HEARTBEAT_MONITORING, True)  # Redis cannot re-enable what the environment switched off
    assert flags.state(HEARTBEAT_MONITORING).enabled is False and flags.state(HEARTBEAT_MONITORING).source == "env"

    env[PREFLIGHT] = "true"
    client.set("sp:flags:FEATURE_PREFLIGHT_ENABLED", "0")
    assert flags.enabled(PREFLIGHT) is False
    flags.clear(PREFLIGHT)
    assert flags.enabled(PREFLIGHT) is True


@pytest.mark.parametrize("raw", ["", "maybe", "flase", "2"])
def test_unknown_flag_values_are_errors_not_guesses(raw):
    with pytest.raises(FlagValueError, match=AUTO_RECOVERY):
        FeatureFlags(None, {AUTO_RECOVERY: raw}).enabled(AUTO_RECOVERY)


def test_unknown_values_in_redis_and_unknown_names_are_errors(redis_server):
    client = redis_server.client()
    client.set("sp:flags:FEATURE_AUTO_RECOVERY_ENABLED", "sometimes")
    with pytest.raises(FlagValueError, match="in Redis"):
        FeatureFlags(client, {}).enabled(AUTO_RECOVERY)
    with pytest.raises(FlagValueError, match="unknown feature flag"):
        FeatureFlags(client, {}).enabled("FEATURE_TYPO_ENABLED")


def test_unreadable_redis_means_off(redis_server):
    client = redis_server.client(socket_timeout=0.5, socket_connect_timeout=0.5)
    redis_server.kill()
    state = FeatureFlags(client, {}).state(AUTO_RECOVERY)
    assert state.enabled is False and state.source == "redis_unreachable"
    assert FeatureFlags(client, {AUTO_RECOVERY: "off"}).state(AUTO_RECOVERY).source == "env"
