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
from stock_pipelines.ops import clock
from stock_pipelines.ops.preflight import CREDENTIAL_VARS
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

    def credentials(self):
        broker = self.name()
        key_var, secret_var = CREDENTIAL_VARS[broker]
        given = {key_var: self.app_key, secret_var: self.app_secret}
        values = {name: dg.EnvVar(name).get_value() if v is None else v for name, v in given.items()}
        return credentials_from(broker, values)

    def tokens(self) -> Path:
        if self.token_dir is not None:
            return Path(self.token_dir)
        return settings.Settings.from_env().data_dir / ".tokens"

    def source(self, client: redis.Redis, now: Callable[[], datetime] = clock.now):
        """(client, gate): the broker client under the shared rate limit, and the breaker's gate."""
        broker_settings = self.settings()
        source = build_source(broker_settings, self.credentials(), client, self.tokens(), now=now)
        return source, BreakerGate(breaker_for(broker_settings.broker, client))


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource with its fields unset: the deployment's environment decides."""
    from stock_pipelines.defs.io_manager import LAKE, LakeIOManager

    return {
        "lake": LakeResource(),
        LAKE: LakeIOManager(),
        "redis": RedisResource(),
        "archive": ArchiveResource(),
        "quality": QualityResource(),
        "broker": BrokerResource(),
    }


@dg.definitions
def bindings() -> dg.Definitions:
    """What the defs folder binds besides its assets, checks, jobs, schedules and sensors: every
    resource, and in-process runs (the default multiprocess executor starts a process per step,
    an asset and each of its checks, which on the 2-core machines this targets turns a 3-day
    backfill from under a minute into several)."""
    return dg.Definitions(resources=default_resources(), executor=dg.in_process_executor)
