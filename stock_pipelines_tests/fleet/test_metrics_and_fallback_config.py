"""The fleet file's metrics ports, metrics host and fallback broker: validated with messages that
name the place, and handed to each child as `collector run --metrics-port/--metrics-host/--fallback`
with the fallback broker's key under the names the collector reads."""

from __future__ import annotations

import textwrap

import pytest

from stock_pipelines.fleet.config import FleetConfigError, load_fleet_config, missing_environment
from stock_pipelines.fleet.launch import collector_argv, collector_environment


def _load(tmp_path, body: str):
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(body))
    return load_fleet_config(path, tmp_path / "data")


def _problems(tmp_path, body: str) -> list[str]:
    with pytest.raises(FleetConfigError) as raised:
        _load(tmp_path, body)
    return raised.value.problems


def test_two_collectors_on_one_metrics_port_are_refused_naming_both(tmp_path):
    problems = _problems(tmp_path, """
        collectors:
          - {id: a, symbols: ["005930"], metrics_port: 9101}
          - {id: b, symbols: ["000660"], metrics_port: 9102}
          - {id: c, symbols: ["035420"], metrics_port: 9101}
        """)
    assert problems == ["metrics ports must be unique: 9101 (a, c) share a port"]


@pytest.mark.parametrize(("port", "message"), [
    (0, "collectors[0] (a).metrics_port: Input should be greater than or equal to 1"),
    (65536, "collectors[0] (a).metrics_port: Input should be less than or equal to 65535"),
    ('"http"', "collectors[0] (a).metrics_port: Input should be a valid integer, unable to parse string as an integer"),
])
def test_a_metrics_port_outside_1_to_65535_is_refused(tmp_path, port, message):
    assert _problems(tmp_path, f"collectors: [{{id: a, symbols: ['005930'], metrics_port: {port}}}]") == [message]


@pytest.mark.parametrize(("entry", "message"), [
    ("source: kis, fallback: kis, fallback_app_key: {key_env: K, secret_env: S}",
     "collectors[0] (a): fallback kis is the source itself: name the other broker"),
    ("source: kiwoom, fallback: kiwoom, fallback_app_key: {key_env: K, secret_env: S}",
     "collectors[0] (a): fallback kiwoom is the source itself: name the other broker"),
    ("fallback: kiwoom",
     "collectors[0] (a): fallback kiwoom needs fallback_app_key (that broker's key and secret)"),
    ("fallback_app_key: {key_env: K, secret_env: S}",
     "collectors[0] (a): fallback_app_key is given without a fallback broker"),
    ("fallback: kiwoom, fallback_app_key: {key_env: K, secret_env: S}, "
     "secondary_app_key: {key_env: K2, secret_env: S2}",
     "collectors[0] (a): give either fallback or secondary_app_key, not both"),
    ("fallback: ebest, fallback_app_key: {key_env: K, secret_env: S}",
     "collectors[0] (a).fallback: Input should be 'kis' or 'kiwoom'"),
])
def test_a_fallback_broker_must_be_the_other_one_and_have_its_key(tmp_path, entry, message):
    assert _problems(tmp_path, f"collectors: [{{id: a, symbols: ['005930'], {entry}}}]") == [message]


def test_children_get_their_metrics_port_the_fleet_host_and_the_fallback_with_its_key(tmp_path):
    config = _load(tmp_path, """
        metrics_host: 0.0.0.0
        exchange: {kis_base_url: "http://127.0.0.1:8700", kiwoom_base_url: "http://127.0.0.1:8700"}
        collectors:
          - id: a
            symbols: ["005930"]
            metrics_port: 9101
            app_keys: [{key_env: A_KEY, secret_env: A_SECRET}]
            fallback: kiwoom
            fallback_app_key: {key_env: W_KEY, secret_env: W_SECRET}
          - id: b
            symbols: ["000660"]
            source: kiwoom
            app_keys: [{key_env: W_KEY, secret_env: W_SECRET}]
            fallback: kis
            fallback_app_key: {key_env: B_KEY, secret_env: B_SECRET}
          - id: c
            symbols: ["035420"]
        """)
    a, b, c = config.collectors
    argv_a, argv_c = collector_argv(config, a), collector_argv(config, c)
    assert argv_a[argv_a.index("--fallback") + 1] == "kiwoom"
    assert argv_a[-4:] == ["--metrics-port", "9101", "--metrics-host", "0.0.0.0"]
    assert "--fallback" not in argv_c and argv_c[-4:] == ["--metrics-port", "0", "--metrics-host", "0.0.0.0"]
    assert config.metrics_url(a) == "http://127.0.0.1:9101/metrics" and config.metrics_url(c) is None

    environ = {"A_KEY": "ak", "A_SECRET": "as", "B_KEY": "bk", "B_SECRET": "bs", "W_KEY": "wk", "W_SECRET": "ws",
               "KIWOOM_APP_KEY": "inherited", "KIS_APP_KEY": "inherited"}
    keys = ("KIS_APP_KEY", "KIS_APP_SECRET", "KIWOOM_APP_KEY", "KIWOOM_SECRET_KEY")
    env_a = collector_environment(config, a, environ, None)
    assert {k: env_a.get(k) for k in keys} == {"KIS_APP_KEY": "ak", "KIS_APP_SECRET": "as",
                                                "KIWOOM_APP_KEY": "wk", "KIWOOM_SECRET_KEY": "ws"}
    env_b = collector_environment(config, b, environ, None)
    assert {k: env_b.get(k) for k in keys} == {"KIS_APP_KEY": "bk", "KIS_APP_SECRET": "bs",
                                                "KIWOOM_APP_KEY": "wk", "KIWOOM_SECRET_KEY": "ws"}
    assert not any(v in " ".join(argv_a + collector_argv(config, b)) for v in ("wk", "ws", "ak", "as", "bk"))
    assert missing_environment(config, {"A_KEY": "ak", "A_SECRET": "as", "W_KEY": "wk", "W_SECRET": "ws",
                                        "KIS_APP_KEY": "k", "KIS_APP_SECRET": "s"}) == [
        "collector b: B_KEY is not set in the environment", "collector b: B_SECRET is not set in the environment"]


def test_the_metrics_host_defaults_to_the_loopback_address(tmp_path):
    config = _load(tmp_path, "collectors: [{id: a, symbols: ['005930'], metrics_port: 9200}]")
    assert config.spec.metrics_host == "127.0.0.1"
    assert collector_argv(config, config.collectors[0])[-4:] == ["--metrics-port", "9200",
                                                                  "--metrics-host", "127.0.0.1"]
