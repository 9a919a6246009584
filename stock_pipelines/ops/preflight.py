"""Pre-flight checks before the session (08:30 on trading days): is everything the day needs there?

The KRX calendar still covering today (a warning when fewer than 60 days are left), broker
credentials and a token the broker accepts (one quotation call for the test symbol), Redis,
Dagster storage (the caller passes a probe, keeping this module free of Dagster), archive path
writable, free disk, memory and CPU headroom (`headroom`), each configured REST source
reachable, and each configured real-time source answering: the test symbol
(`STOCK_PIPELINES_PREFLIGHT_SYMBOL`, default 005930) subscribed, acknowledged and a PINGPONG
seen (`feed_probe`; KIS WebSocket sources as the collector configures them).
Every check runs (one failure does not hide the next); the report lists what is wrong.
Secrets are checked for presence only and never appear in a detail.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from stock_pipelines.collector.config import sources_from_env
from stock_pipelines.market import CalendarHorizon, CalendarRangeError
from stock_pipelines.ops import clock
from stock_pipelines.ops.feed_probe import DEFAULT_SYMBOL, probe_kis_feed
from stock_pipelines.ops.headroom import check_cpu, check_memory, thresholds

ENV_MIN_FREE_GB = "STOCK_PIPELINES_MIN_FREE_GB"
ENV_TEST_SYMBOL = "STOCK_PIPELINES_PREFLIGHT_SYMBOL"
DEFAULT_MIN_FREE_GB = 1.0
CREDENTIAL_VARS = {
    "kis": ("KIS_APP_KEY", "KIS_APP_SECRET"),
    "kiwoom": ("KIWOOM_APP_KEY", "KIWOOM_SECRET_KEY"),
}
URL_VARS = {"kis": "KIS_BASE_URL", "kiwoom": "KIWOOM_BASE_URL"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class PreflightReport:
    results: list[CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # passed, but a person should act soon

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def describe(self) -> str:
        if self.ok:
            return f"all {len(self.results)} pre-flight checks passed"
        return "pre-flight failed: " + "; ".join(f"{r.name}: {r.detail}" for r in self.failures)

    def to_json(self) -> dict:
        return {"ok": self.ok, "checks": [r.__dict__ for r in self.results], "warnings": self.warnings}


def _run(name: str, probe: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, probe())
    except Exception as error:  # noqa: BLE001 - every failure is a finding, reported by class and message
        return CheckResult(name, False, f"{type(error).__name__}: {error}")


def check_credentials(broker: str, environ: Mapping[str, str]) -> str:
    missing = [var for var in CREDENTIAL_VARS[broker] if not environ.get(var)]
    if missing:
        raise PermissionError(f"missing {', '.join(missing)}")
    return "present"


def check_token(broker: str, token_dir: Path, environ: Mapping[str, str], symbol: str, today: date) -> str:
    """Issue (or reuse the cached) token: proves the credentials are accepted today. For KIS also
    one quotation call with it (the test symbol's day volume): the token itself is accepted."""
    from stock_pipelines.brokers.model import BrokerError
    from stock_pipelines.recovery.sources import BrokerSettings, build_source, credentials_from
    from stock_pipelines.redis_conn import redis_client

    settings = BrokerSettings.from_env(environ)
    source = build_source(settings, credentials_from(settings.broker, environ), redis_client(), token_dir)
    issue = source._issue_token  # the client's own token call, through its cache
    token = source.tokens.get(issue)
    valid = f"token valid for {max(0, token.expires_at - time.time()) / 3600:.1f} h"
    if settings.broker != "kis":
        return valid
    # One attempt: a refused token is the finding (retrying would reissue it, which the broker
    # allows once a minute, and only delay the same answer).
    source.max_attempts = 1
    try:
        source.day_volume(symbol, today)
    except BrokerError as error:
        raise PermissionError(f"a quotation call for {symbol} with the token failed: {error}") from None
    return f"{valid}, accepted for {symbol}"


def check_calendar(today: date) -> str:
    """Days of supported KRX calendar left; past its end the schedules cannot tell a trading day."""
    horizon = CalendarHorizon(today)
    if horizon.days_left < 0:
        raise CalendarRangeError(today.isoformat())
    return horizon.describe()


def check_redis(ping: Callable[[], object]) -> str:
    if not ping():
        raise ConnectionError("no PONG")
    return "answers"


def check_writable(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".preflight-", delete=True) as handle:
        handle.write(b"ok")
        handle.flush()
    return f"{path} writable"


def check_free_disk(path: Path, min_free_gb: float) -> str:
    probe = path
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    if free_gb < min_free_gb:
        raise OSError(f"{free_gb:.2f} GB free under {path}, need {min_free_gb:g} GB")
    return f"{free_gb:.1f} GB free"


def check_reachable(url: str, timeout: float = 5.0) -> str:
    response = httpx.get(url, timeout=timeout)
    if response.status_code >= 500:
        raise ConnectionError(f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


def run_preflight(
    *,
    broker: str,
    archive_dir: Path,
    token_dir: Path,
    redis_ping: Callable[[], object],
    dagster_storage: Callable[[], str] | None = None,
    environ: Mapping[str, str],
    today: date | None = None,
) -> PreflightReport:
    report = PreflightReport()
    today = today or clock.now().date()
    symbol = environ.get(ENV_TEST_SYMBOL, DEFAULT_SYMBOL)
    report.results.append(_run(f"{broker} credentials", lambda: check_credentials(broker, environ)))
    report.results.append(_run("redis", lambda: check_redis(redis_ping)))
    if dagster_storage is not None:
        report.results.append(_run("dagster storage", dagster_storage))
    report.results.append(_run("archive writable", lambda: check_writable(archive_dir)))
    min_free = float(environ.get(ENV_MIN_FREE_GB, DEFAULT_MIN_FREE_GB))
    report.results.append(_run("free disk", lambda: check_free_disk(archive_dir, min_free)))
    report.results += headroom_checks(environ)
    for name, var in URL_VARS.items():
        url = environ.get(var, "")
        if url:
            report.results.append(_run(f"{name} reachable", lambda url=url: check_reachable(url)))
        elif name == broker:
            report.results.append(CheckResult(f"{name} reachable", False, f"{var} is not set"))
    if report.results[0].ok and environ.get(URL_VARS[broker]):
        report.results.append(
            _run(f"{broker} token", lambda: check_token(broker, token_dir, environ, symbol, today))
        )
    report.results += feed_checks(environ, symbol)
    horizon = CalendarHorizon(today)
    report.results.append(_run("calendar", lambda: check_calendar(horizon.today)))
    if horizon.running_out and horizon.days_left >= 0:  # past the end it is a failure, not a warning
        report.warnings.append(horizon.describe())
    return report


def headroom_checks(environ: Mapping[str, str]) -> list[CheckResult]:
    try:
        min_memory_mb, max_load = thresholds(environ)
    except ValueError as error:
        return [CheckResult("headroom settings", False, str(error))]
    return [_run("memory", lambda: check_memory(min_memory_mb)), _run("cpu", lambda: check_cpu(max_load))]


def feed_checks(environ: Mapping[str, str], symbol: str) -> list[CheckResult]:
    """One probe per configured real-time source (none configured: no check; the collector's
    own settings decide which sources it streams from)."""
    sources, _problems = sources_from_env(environ)
    return [
        _run(f"{source.broker} {source.name} feed", lambda source=source: probe_kis_feed(source, symbol))
        for source in sources
        if source.broker == "kis"  # the Kiwoom WebSocket (LOGIN, REG 0B) has no probe yet
    ]
