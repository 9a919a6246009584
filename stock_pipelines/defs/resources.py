"""The Dagster resources: every setting a step uses, bound once in `Definitions(resources=...)`.

A field left unset (None) takes its documented environment variable when a step uses the
resource, else the variable's default (README, docs/production.md), so a deployment's variables
keep working unchanged and a variable changed before a run is seen by it. A test, or a
deployment that prefers Dagster config, sets the field instead.

Broker credentials are never bound in the Definitions: `BrokerResource.credentials()` reads them
through `dg.EnvVar` when a client is built, so no run config, tag, log or metadata holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import dagster as dg
import redis
from pydantic import Field

from stock_pipelines import settings
from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.collector.config import sources_from_env
from stock_pipelines.ops import clock
from stock_pipelines.ops.headroom import ENV_MAX_LOAD_PER_CPU, ENV_MIN_AVAILABLE_MB
from stock_pipelines.ops.preflight import CREDENTIAL_VARS, ENV_MIN_FREE_GB, ENV_TEST_SYMBOL, URL_VARS
from stock_pipelines.quality.config import QualityConfig
from stock_pipelines.recovery.sources import (
    BROKER_VAR,
    DEFAULTS,
    PROCESSES_VAR,
    BreakerGate,
    BrokerSettings,
    breaker_for,
    broker_name,
    build_source,
    credentials_from,
)
from stock_pipelines.redis_conn import ENV_PREFIX, ENV_URL, RedisSettings, configure, redis_client


def _with(fields: Mapping[str, object]) -> dict[str, str]:
    """The process environment with the set fields (variable name -> value) laid over it."""
    return {**settings.environment(), **{name: str(v) for name, v in fields.items() if v is not None}}


class LakeResource(dg.ConfigurableResource):
    """The lake's root: `<data dir>/<asset>/date=YYYY-MM-DD/part-0.parquet` (`lake.py`)."""

    data_dir: str | None = Field(default=None, description="None: STOCK_PIPELINES_DATA_DIR (default data/)")

    def root(self) -> Path:
        return settings.Settings.from_env(_with({settings.DATA_DIR_VAR: self.data_dir})).data_dir


class RedisResource(dg.ConfigurableResource):
    """Redis for heartbeats, governance, kill switches, the rate limiter and the breaker. Using it
    makes its settings the process's (`redis_conn.configure`): every key the step or sensor
    builds is under its prefix, and the deployment's kill switches come with it."""

    url: str | None = Field(default=None, description="None: REDIS_URL, else the embedded server")
    key_prefix: str | None = Field(default=None, description="None: STOCK_PIPELINES_REDIS_PREFIX (sp)")

    def redis_settings(self) -> RedisSettings:
        return RedisSettings.from_env(_with({ENV_URL: self.url, ENV_PREFIX: self.key_prefix}))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        configure(self.redis_settings())

    def client(self) -> redis.Redis:
        chosen = self.redis_settings()
        configure(chosen)
        return redis_client(chosen.url)


class ArchiveResource(dg.ConfigurableResource):
    """The collectors' JSONL archive and the thresholds its checks apply (`archive.config`)."""

    archive_dir: str | None = Field(
        default=None, description="None: STOCK_PIPELINES_ARCHIVE_DIR (<data dir>/archive)"
    )
    fallback_dir: str | None = Field(default=None, description="None: STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR")
    session_tolerance_s: float | None = None
    quarantine_warn_share: float | None = None
    quarantine_error_share: float | None = None
    retention_trading_days: int | None = None
    max_silence_s: float | None = None

    def config(self) -> ArchiveConfig:
        return ArchiveConfig.from_env(_with({
            "STOCK_PIPELINES_ARCHIVE_DIR": self.archive_dir,
            "STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR": self.fallback_dir,
            "STOCK_PIPELINES_SESSION_TOLERANCE_S": self.session_tolerance_s,
            "STOCK_PIPELINES_QUARANTINE_WARN_SHARE": self.quarantine_warn_share,
            "STOCK_PIPELINES_QUARANTINE_ERROR_SHARE": self.quarantine_error_share,
            "STOCK_PIPELINES_RETENTION_TRADING_DAYS": self.retention_trading_days,
            "STOCK_PIPELINES_ARCHIVE_MAX_SILENCE_S": self.max_silence_s,
        }))


class QualityResource(dg.ConfigurableResource):
    """Completeness thresholds and the broker budgets of the quality checks (`quality.config`)."""

    completeness_error: float | None = None
    completeness_warn: float | None = None
    rest_calls: int | None = None
    day_volume_calls: int | None = None
    history_days: int | None = None

    def config(self) -> QualityConfig:
        return QualityConfig.from_env(_with({
            "STOCK_PIPELINES_COMPLETENESS_ERROR": self.completeness_error,
            "STOCK_PIPELINES_COMPLETENESS_WARN": self.completeness_warn,
            "STOCK_PIPELINES_QUALITY_REST_CALLS": self.rest_calls,
            "STOCK_PIPELINES_QUALITY_DAY_VOLUME_CALLS": self.day_volume_calls,
            "STOCK_PIPELINES_QUALITY_HISTORY_DAYS": self.history_days,
        }))


class BrokerResource(dg.ConfigurableResource):
    """The broker's REST client behind the shared rate limiter, the circuit breaker and the token
    cache (`recovery.sources`). The credentials are read through `dg.EnvVar` when a client is
    built (KIS_APP_KEY/KIS_APP_SECRET or KIWOOM_APP_KEY/KIWOOM_SECRET_KEY); the two credential
    fields exist for tests and must not be set in a deployment's Definitions."""

    broker: str | None = Field(default=None, description="None: STOCK_PIPELINES_BROKER (kis)")
    base_url: str | None = Field(default=None, description="None: KIS_BASE_URL or KIWOOM_BASE_URL")
    rate_limit_per_s: int | None = Field(
        default=None, description="None: KIS_RATE_LIMIT_PER_S (20) or KIWOOM_RATE_LIMIT_PER_S (5)"
    )
    processes: int | None = Field(default=None, description="None: STOCK_PIPELINES_BROKER_PROCESSES (2)")
    token_dir: str | None = Field(default=None, description="None: <data dir>/.tokens")
    app_key: str | None = Field(default=None, description="tests only")
    app_secret: str | None = Field(default=None, description="tests only")

    def name(self) -> str:
        return broker_name(_with({BROKER_VAR: self.broker}))

    def settings(self) -> BrokerSettings:
        url_var, limit_var, _ = DEFAULTS[self.name()]
        return BrokerSettings.from_env(_with({
            BROKER_VAR: self.broker, url_var: self.base_url, limit_var: self.rate_limit_per_s,
            PROCESSES_VAR: self.processes,
        }))

    def _credential_values(self) -> dict[str, str | None]:
        key_var, secret_var = CREDENTIAL_VARS[self.name()]
        given = {key_var: self.app_key, secret_var: self.app_secret}
        return {name: dg.EnvVar(name).get_value() if v is None else v for name, v in given.items()}

    def credentials(self):
        return credentials_from(self.name(), self._credential_values())

    def variables(self) -> dict[str, str]:
        """The deployment's settings by variable name with this broker's (its fields, its
        credentials) laid over them: what the pre-flight checks, including the collector's feed
        settings (`collector.config.sources_from_env`) its feed probes use."""
        broker = self.name()
        url_var, limit_var, _ = DEFAULTS[broker]
        return _with({
            BROKER_VAR: broker, url_var: self.base_url, limit_var: self.rate_limit_per_s,
            PROCESSES_VAR: self.processes, **self._credential_values(),
        })

    def secrets(self) -> tuple[str, ...]:
        """Every credential the Dagster processes use: each broker's app key and secret (this
        one's as bound), and the keys of each real-time feed the settings configure (the
        pre-flight probes them). Alerts scrub these values."""
        try:
            env = self.variables()
        except ValueError:  # an unknown broker name: the alert saying so must still be scrubbed
            env = _with({})
        values: set[str | None] = set()
        for broker in URL_VARS:
            values |= {env.get(var) for var in CREDENTIAL_VARS[broker]}
            for source in sources_from_env(env, broker)[0]:
                values |= {part for key in source.keys for part in (key.app_key, key.app_secret)}
        return tuple(sorted(v for v in values if v))

    def tokens(self) -> Path:
        if self.token_dir is not None:
            return Path(self.token_dir)
        return settings.Settings.from_env().data_dir / ".tokens"

    def source(self, client: redis.Redis, now: Callable[[], datetime] = clock.now):
        """(client, gate): the broker client under the shared rate limit, and the breaker's gate."""
        broker_settings = self.settings()
        source = build_source(broker_settings, self.credentials(), client, self.tokens(), now=now)
        return source, BreakerGate(breaker_for(broker_settings.broker, client))


class PreflightResource(dg.ConfigurableResource):
    """The pre-flight's test symbol and thresholds (`ops.preflight`, `ops.headroom`)."""

    test_symbol: str | None = Field(
        default=None, description="None: STOCK_PIPELINES_PREFLIGHT_SYMBOL (005930)"
    )
    min_free_gb: float | None = Field(default=None, description="None: STOCK_PIPELINES_MIN_FREE_GB (1)")
    min_available_memory_mb: float | None = Field(
        default=None, description="None: STOCK_PIPELINES_MIN_AVAILABLE_MEMORY_MB"
    )
    max_load_per_cpu: float | None = Field(default=None, description="None: STOCK_PIPELINES_MAX_LOAD_PER_CPU")

    def settings(self, broker: BrokerResource) -> dict[str, str]:
        """What `run_preflight` reads: the broker's settings (`BrokerResource.variables`) with
        these fields over them."""
        fields = {
            ENV_TEST_SYMBOL: self.test_symbol, ENV_MIN_FREE_GB: self.min_free_gb,
            ENV_MIN_AVAILABLE_MB: self.min_available_memory_mb, ENV_MAX_LOAD_PER_CPU: self.max_load_per_cpu,
        }
        return {**broker.variables(), **{name: str(v) for name, v in fields.items() if v is not None}}


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource with its fields unset: the deployment's environment decides. The alert
    sender scrubs the secrets of the same broker resource the steps use."""
    from stock_pipelines.defs.alerting import AlertResource
    from stock_pipelines.defs.io_manager import LAKE, LakeIOManager

    broker = BrokerResource()
    return {
        "lake": LakeResource(),
        LAKE: LakeIOManager(),
        "redis": RedisResource(),
        "archive": ArchiveResource(),
        "quality": QualityResource(),
        "broker": broker,
        "alerts": AlertResource(broker=broker),
        "preflight": PreflightResource(),
    }


@dg.definitions
def bindings() -> dg.Definitions:
    """What the defs folder binds besides its assets, checks, jobs, schedules and sensors: every
    resource, and in-process runs (the default multiprocess executor starts a process per step,
    an asset and each of its checks, which on the 2-core machines this targets turns a 3-day
    backfill from under a minute into several)."""
    return dg.Definitions(resources=default_resources(), executor=dg.in_process_executor)
