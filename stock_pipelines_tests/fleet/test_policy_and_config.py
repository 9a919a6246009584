"""The fleet's restart decisions (backoff bounds, full jitter, the slow retry of a failed
self-diagnosis, dormant mode) and the fleet file's validation, without processes."""

from __future__ import annotations

import random
import signal
import textwrap
from pathlib import Path

import pytest

from stock_pipelines.fleet.config import FleetConfigError, load_fleet_config
from stock_pipelines.fleet.launch import collector_argv, collector_environment
from stock_pipelines.fleet.policy import Exit, ExitKind, RestartPolicy, State
from stock_pipelines.resilience.backoff import Backoff

POLICY = RestartPolicy(restart=Backoff(1.0, 60.0), diagnosis=Backoff(60.0, 900.0), stable_after_s=60.0)
KILLED = Exit(code=-signal.SIGKILL, started=True, stop_requested=False, ran_s=3.0)


def test_crash_restarts_double_their_bound_up_to_the_cap_and_stay_inside_it():
    rng = random.Random(7)
    attempt, ceilings = 0, []
    for _ in range(9):
        decision = POLICY.decide(KILLED, attempt, 0, rng)
        assert decision.kind is ExitKind.CRASHED and decision.state is State.BACKOFF
        ceilings.append(POLICY.bound(attempt))
        assert 0.0 <= decision.delay_s <= POLICY.bound(attempt)
        assert decision.reason == "crashed (killed by SIGKILL)"
        attempt = decision.crash_attempt
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_full_jitter_spreads_ten_simultaneous_deaths_over_the_window():
    rng = random.Random(3)
    delays = [POLICY.decide(KILLED, 4, 0, rng).delay_s for _ in range(10)]  # ten collectors, 5th crash each
    bound = POLICY.bound(4)
    assert all(0.0 <= d <= bound for d in delays)
    # no burst: the restarts land all over the 16 s window, not together
    assert max(delays) - min(delays) > bound / 2
    assert len({round(d, 3) for d in delays}) == 10
    # the full range is used over many draws (full jitter, not "half" or "equal" jitter)
    many = [POLICY.decide(KILLED, 4, 0, rng).delay_s for _ in range(2000)]
    assert min(many) < bound * 0.05 and max(many) > bound * 0.95


def test_a_stable_run_resets_the_attempts():
    decision = POLICY.decide(Exit(-signal.SIGKILL, True, False, ran_s=61.0), 6, 0, random.Random(1))
    assert decision.crash_attempt == 1 and decision.delay_s <= POLICY.bound(0)


def test_failed_self_diagnosis_is_retried_slowly_and_a_usage_error_never():
    rng = random.Random(5)
    diagnosis = Exit(code=1, started=False, stop_requested=False, ran_s=1.5)
    first = POLICY.decide(diagnosis, 0, 0, rng, detail="broker: no WebSocket approval key")
    assert first.kind is ExitKind.DIAGNOSIS_FAILED and first.state is State.FAILED
    assert 60.0 <= first.delay_s <= 60.0 and first.diagnosis_attempt == 1
    assert first.reason == "self-diagnosis failed (exit status 1: broker: no WebSocket approval key)"
    later = [POLICY.decide(diagnosis, 0, n, rng).delay_s for n in range(1, 8)]
    assert all(60.0 <= d <= 900.0 for d in later)
    # exit 1 after the start line is a runtime failure (archive error): a crash, restarted fast
    assert POLICY.decide(Exit(1, True, False, 30.0), 0, 0, rng).kind is ExitKind.CRASHED
    usage = POLICY.decide(Exit(2, False, False, 0.4), 0, 0, rng)
    assert usage.state is State.FAILED and usage.delay_s is None
    assert POLICY.decide(Exit(0, True, True, 9.0), 3, 2, rng).state is State.STOPPED


def test_dormant_mode_restarts_at_the_cap_only():
    decision = POLICY.decide(KILLED, 0, 0, random.Random(2), dormant=True)
    assert decision.delay_s == 60.0 and "dormant" in decision.reason


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_every_problem_of_a_fleet_file_is_named_at_once(tmp_path):
    path = _write(tmp_path, """
        restart_backoff: {base_s: 5, cap_s: 1}
        colector_settings: {}
        redis_url_env: redis://localhost:6379/0
        collectors:
          - id: kis-1
            symbols: [000660]
          - id: kis-1
            symbols: ["005930"]
            app_keys: [{key_env: KIS_APP_KEY, secret_env: "my-secret-value"}]
          - id: kis-3
            symbols: ["005930"]
            symbols_file: x.txt
          - id: "bad id"
            symbols: ["005930"]
            source: ebest
        """)
    with pytest.raises(FleetConfigError) as raised:
        load_fleet_config(path, tmp_path)
    problems = raised.value.problems
    text = "\n".join(problems)
    assert "restart_backoff: cap_s (1.0) is below base_s (5.0)" in text
    assert "colector_settings: unknown field (a typo?)" in text
    assert "redis_url_env: 'redis://localhost:6379/0' is not an environment variable name" in text
    assert "collectors[0] (kis-1).symbols: quote every code" in text
    assert ("collectors[1] (kis-1).app_keys[0].secret_env: 'my-secret-value' is not an environment variable"
            in text)
    assert "collectors[2] (kis-3): give exactly one of symbols or symbols_file" in text
    assert "collectors[3] (bad id).id:" in text
    assert "collectors[3] (bad id).source: Input should be 'kis' or 'kiwoom'" in text
    assert len(problems) == 8, problems
    assert all(str(path) in line for line in str(raised.value).splitlines())


@pytest.mark.parametrize(("body", "message"), [
    ("collectors: []", "collectors: List should have at least 1 item"),
    ("collectors: [{id: a, symbols: ['00593X0']}]", "collectors[0] (a).symbols: not KRX short codes"),
    ("collectors: [{id: a, symbols_file: nope.txt}]", "collectors[0] (a).symbols_file: no such file"),
    ("collectors: [{id: a, symbols: ['005930']}]\ncollectors_x: 1", "collectors_x: unknown field"),
    ("collectors: [{id: a, symbols: ['005930']}, {id: a, symbols: ['000660']}]",
     "collector ids must be unique: a appear"),
    ("- just a list", "expected a mapping"),
    ("collectors: [", "not valid YAML"),
])
def test_single_problems(tmp_path, body, message):
    with pytest.raises(FleetConfigError) as raised:
        load_fleet_config(_write(tmp_path, body), tmp_path)
    assert any(message in p for p in raised.value.problems), raised.value.problems


def test_children_get_only_their_own_keys_by_the_names_the_collector_reads(tmp_path):
    (tmp_path / "b.txt").write_text("# bank\n105560\n055550, 086790\n")
    path = _write(tmp_path, """
        archive_dir: archive
        clock: exchange
        exchange: {kis_base_url: "http://127.0.0.1:8700"}
        collector_settings: {HEARTBEAT_WALL_S: 0.5}
        collectors:
          - id: a
            symbols: ["005930", "000660"]
            app_keys: [{key_env: A_KEY, secret_env: A_SECRET}, {key_env: A_KEY2, secret_env: A_SECRET2}]
            secondary_app_key: {key_env: S_KEY, secret_env: S_SECRET}
          - id: b
            symbols_file: b.txt
        """)
    config = load_fleet_config(path, tmp_path / "data")
    environ = {"A_KEY": "ak-1", "A_SECRET": "as-1", "A_KEY2": "ak-2", "A_SECRET2": "as-2", "S_KEY": "sk-1",
               "S_SECRET": "ss-1", "KIS_APP_KEY": "inherited", "KIS_APP_SECRET": "inherited-secret",
               "KIS_APP_KEY_3": "stray", "PATH": "/bin"}
    a, b = config.collectors
    env_a = collector_environment(config, a, environ, "redis://r:1/0")
    assert {k: v for k, v in env_a.items() if k.startswith("KIS_")} == {
        "KIS_BASE_URL": "http://127.0.0.1:8700", "KIS_APP_KEY": "ak-1", "KIS_APP_SECRET": "as-1",
        "KIS_APP_KEY_2": "ak-2", "KIS_APP_SECRET_2": "as-2", "KIS_SECONDARY_APP_KEY": "sk-1",
        "KIS_SECONDARY_APP_SECRET": "ss-1"}
    assert env_a["REDIS_URL"] == "redis://r:1/0" and env_a["STOCK_PIPELINES_COLLECTOR_ID"] == "a"
    assert env_a["STOCK_PIPELINES_ARCHIVE_DIR"] == str(tmp_path / "archive")
    assert env_a["STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S"] == "0.5" and env_a["PATH"] == "/bin"
    env_b = collector_environment(config, b, environ, None)  # default keys: KIS_APP_KEY / KIS_APP_SECRET
    assert env_b["KIS_APP_KEY"] == "inherited" and "KIS_APP_KEY_3" not in env_b and "REDIS_URL" not in env_b
    argv = collector_argv(config, b)
    assert argv[-12:] == ["--symbols", "105560,055550,086790", "--id", "b", "--source", "kis",
                          "--clock", "exchange", "--metrics-port", "0", "--metrics-host", "127.0.0.1"]
    assert not any(value in " ".join(collector_argv(config, a)) for value in ("as-1", "ak-1", "ss-1", "as-2"))
    assert config.status_file == tmp_path / "data" / "fleet" / "status.json"
