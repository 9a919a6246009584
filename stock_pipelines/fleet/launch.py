"""What one collector child runs: the real `stock-pipelines collector run` command line and its
environment, built from the fleet file and the supervisor's own environment.

The child's credentials are exactly the ones its fleet entry names: every KIS/Kiwoom key variable
the supervisor inherited is removed first, then the named values are copied under the names the
collector reads (docs/collector.md: KIS_APP_KEY, KIS_APP_KEY_2, ..., KIS_SECONDARY_APP_KEY, and the
fallback broker's KIS_APP_KEY or KIWOOM_APP_KEY).
Values never appear in the argv (visible in `ps`) or in anything the supervisor logs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

from stock_pipelines.collector.config import ENV_NAMES
from stock_pipelines.fleet.config import CollectorSpec, FleetConfig, KeyPair, collector_setting

# KIS_APP_KEY, KIS_APP_SECRET_2, KIS_SECONDARY_APP_KEY, ..., KIWOOM_APP_KEY, KIWOOM_SECRET_KEY
CREDENTIAL = re.compile(r"^(KIS_(SECONDARY_)?APP_(KEY|SECRET)(_[0-9]+)?|KIWOOM_(APP|SECRET)_KEY)$")



def collector_argv(config: FleetConfig, collector: CollectorSpec) -> list[str]:
    argv = [sys.executable, "-m", "stock_pipelines.cli", "collector", "run",
            "--symbols", ",".join(config.symbols[collector.id]), "--id", collector.id,
            "--source", collector.source, "--clock", config.spec.clock]
    if collector.fallback is not None:
        argv += ["--fallback", collector.fallback]
    # explicit, so a STOCK_PIPELINES_COLLECTOR_METRICS_PORT the supervisor inherited is not shared by all
    argv += ["--metrics-port", str(collector.metrics_port or 0), "--metrics-host", config.spec.metrics_host]
    return argv


def collector_environment(config: FleetConfig, collector: CollectorSpec, environ: Mapping[str, str],
                          redis_url: str | None) -> dict[str, str]:
    """`redis_url`: the fleet's Redis (the value of the variable `redis_url_env` names, or the
    embedded server's URL), handed on as REDIS_URL."""
    env = {k: v for k, v in environ.items() if not CREDENTIAL.match(k)}
    spec = config.spec
    if config.archive_dir is not None:
        env["STOCK_PIPELINES_ARCHIVE_DIR"] = str(config.archive_dir)
    if redis_url:
        env["REDIS_URL"] = redis_url
    endpoints = {"KIS_BASE_URL": spec.exchange.kis_base_url, "KIS_WS_URL": spec.exchange.kis_ws_url,
                 "KIWOOM_BASE_URL": spec.exchange.kiwoom_base_url}
    for name, value in endpoints.items():
        if value:
            env[name] = value
    for name, value in spec.collector_settings.items():
        env[collector_setting(name)] = str(value)
    if collector.source == "kiwoom":
        _copy(env, environ, collector.app_keys[0], *_key_names("kiwoom"))
    else:
        for index, pair in enumerate(collector.app_keys):
            suffix = "" if index == 0 else f"_{index + 1}"
            _copy(env, environ, pair, f"KIS_APP_KEY{suffix}", f"KIS_APP_SECRET{suffix}")
        if collector.secondary_app_key is not None:
            _copy(env, environ, collector.secondary_app_key,
                  "KIS_SECONDARY_APP_KEY", "KIS_SECONDARY_APP_SECRET")
    if collector.fallback is not None and collector.fallback_app_key is not None:
        _copy(env, environ, collector.fallback_app_key, *_key_names(collector.fallback))
    env["STOCK_PIPELINES_COLLECTOR_ID"] = collector.id
    return env


def _copy(env: dict[str, str], environ: Mapping[str, str], pair: KeyPair,
          key_name: str, secret_name: str) -> None:
    # a missing variable is left unset: the collector's self-diagnosis names it and exits 1
    for source, target in ((pair.key_env, key_name), (pair.secret_env, secret_name)):
        if environ.get(source):
            env[target] = environ[source]


def _key_names(broker: str) -> tuple[str, str]:
    """The (key, secret) variables the collector reads for `broker`'s first key."""
    _base, _ws, key_name, secret_name, _path = ENV_NAMES[broker]
    return key_name, secret_name
