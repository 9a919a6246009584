"""Self-diagnosis before a collector starts: every problem found, one clear line each.

Checks: required settings present; Redis reachable; archive writable; disk above the floor;
the broker's credential (KIS WebSocket approval key, Kiwoom access token) obtainable with each
configured app key; enough app keys
for the sessions the symbols need (when a per-key session limit is set). The caller exits 1
on any problem: no silent half-start.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
from pathlib import Path

import httpx
import redis

from stock_pipelines.archive.disk_floor import OPERATOR_FLOOR_FILE, read_operator_floor
from stock_pipelines.archive.layout import check_collector_id
from stock_pipelines.collector.config import CollectorSettings, FeedSource
from stock_pipelines.collector.kis_session import LinkError
from stock_pipelines.collector.kiwoom_session import KiwoomTokens


def check_redis(client_factory) -> list[str]:
    try:
        client = client_factory()
        client.ping()
    except (redis.RedisError, OSError, RuntimeError) as error:
        return [f"redis: not reachable ({type(error).__name__}: {_one_line(error)}); "
                "set REDIS_URL or start Redis"]
    return []


def check_archive(root: Path, collector_id: str, min_free_bytes: int) -> list[str]:
    directory = root / check_collector_id(collector_id)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        with probe.open("wb") as handle:
            handle.write(b"probe\n")
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as error:
        return [f"archive: cannot write {directory} ({error.strerror or error}); fix its permissions or set "
                "STOCK_PIPELINES_ARCHIVE_DIR / STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR"]
    # A floor file that is not a number does not stop the collector: the running writer reports it
    # (DISK_FLOOR_INVALID) and keeps its floor, so the start is measured against the configured one.
    operator_floor, _ = read_operator_floor(root)
    source = "STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES"
    if operator_floor is not None:  # what the writer will follow once running
        min_free_bytes, source = operator_floor, str(root / OPERATOR_FLOOR_FILE)
    free = shutil.disk_usage(directory).free
    if free < min_free_bytes:
        return [f"disk: {free:,} bytes free under {directory}, below the floor of {min_free_bytes:,} "
                f"({source})"]
    return []


def check_token(source: FeedSource, token_dir: Path | None, timeout_s: float = 10.0) -> list[str]:
    """Kiwoom: an access token for each app key (issued into the token cache the collector then
    reads, so the check costs no second issue)."""
    problems = []
    tokens = KiwoomTokens(token_dir)
    tokens.open(timeout_s)
    for key in source.keys:
        try:
            asyncio.run(tokens.get(source, key))
        except LinkError as error:
            problems.append(f"broker: {source.name} Kiwoom app key {key.label}: no access token ({error})")
        except httpx.HTTPError as error:
            problems.append(f"broker: {source.name} Kiwoom app key {key.label}: {source.base_url} not "
                            f"reachable ({type(error).__name__})")
    return problems


def check_approval(source: FeedSource, timeout_s: float = 10.0) -> list[str]:
    problems = []
    with httpx.Client(timeout=timeout_s) as http:
        for key in source.keys:
            where = f"{source.name} KIS app key {key.label}"
            try:
                reply = http.post(f"{source.base_url.rstrip('/')}/oauth2/Approval", json={
                    "grant_type": "client_credentials", "appkey": key.app_key, "secretkey": key.app_secret})
            except httpx.HTTPError as error:
                problems.append(f"broker: {where}: {source.base_url} not reachable ({type(error).__name__})")
                continue
            try:
                body = reply.json()
            except ValueError:
                body = {}
            if reply.status_code != 200 or not isinstance(body, dict) or not body.get("approval_key"):
                code = body.get("error_code") or body.get("msg_cd") or "" if isinstance(body, dict) else ""
                problems.append(
                    f"broker: {where}: no WebSocket approval key (HTTP {reply.status_code} {code})".rstrip())
    return problems


def check_capacity(sources: list[FeedSource], symbols: int, settings: CollectorSettings) -> list[str]:
    if settings.sessions_per_key is None:
        return []
    sessions = math.ceil(symbols / settings.max_subscriptions)
    problems = []
    for source in sources:
        allowed = len(source.keys) * settings.sessions_per_key
        if sessions > allowed:
            problems.append(
                f"capacity: {symbols} symbols need {sessions} sessions of {settings.max_subscriptions}, "
                f"but the {source.name} source's {len(source.keys)} app key(s) allow {allowed}; "
                "add KIS_APP_KEY_n keys")
    return problems


def diagnose(
    sources: list[FeedSource], setting_problems: list[str], symbols: int, settings: CollectorSettings,
    archive_root: Path, collector_id: str, min_free_bytes: int, redis_factory, token_dir: Path | None = None,
) -> list[str]:
    problems = list(setting_problems)
    problems += check_redis(redis_factory)
    problems += check_archive(archive_root, collector_id, min_free_bytes)
    problems += check_capacity(sources, symbols, settings)
    for source in sources:
        problems += check_token(source, token_dir) if source.broker == "kiwoom" else check_approval(source)
    return problems


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]
