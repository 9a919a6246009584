"""Collector settings from the environment and the command line (secrets only from the environment).

Feeds (docs/collector.md, "Settings"):
- primary KIS: KIS_BASE_URL (REST, for the approval key), KIS_WS_URL (default: derived from
  KIS_BASE_URL as the simulator serves it), KIS_APP_KEY / KIS_APP_SECRET, and more app keys for
  sharding as KIS_APP_KEY_2 / KIS_APP_SECRET_2, KIS_APP_KEY_3 / ... (contiguous);
- Kiwoom (`--source kiwoom` or `--fallback kiwoom`): KIWOOM_BASE_URL (REST, for the access
  token), KIWOOM_WS_URL (default: KIWOOM_BASE_URL's host with /api/dostk/websocket, as the
  simulator serves it; the real one is wss://api.kiwoom.com:10000/api/dostk/websocket),
  KIWOOM_APP_KEY / KIWOOM_SECRET_KEY (more as KIWOOM_APP_KEY_2 / KIWOOM_SECRET_KEY_2, ...);
- secondary (failover): the `--fallback` broker's feed, or else a second KIS key:
  KIS_SECONDARY_APP_KEY / KIS_SECONDARY_APP_SECRET, optional KIS_SECONDARY_BASE_URL /
  KIS_SECONDARY_WS_URL (default: the primary's endpoints).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stock_pipelines.archive.record import is_valid_symbol

WS_PATH = "/tryitout/H0STCNT0"  # the simulator's (and KIS's test) path; a real KIS_WS_URL is set explicitly
KIWOOM_WS_PATH = "/api/dostk/websocket"  # on the REST host here; the real one is on port 10000
BROKERS = ("kis", "kiwoom")
BROKER_LABELS = {"kis": ("KIS", "approval key"), "kiwoom": ("Kiwoom", "access token")}
# broker -> (REST URL, WebSocket URL, app key, secret, default WebSocket path) settings
ENV_NAMES = {
    "kis": ("KIS_BASE_URL", "KIS_WS_URL", "KIS_APP_KEY", "KIS_APP_SECRET", WS_PATH),
    "kiwoom": ("KIWOOM_BASE_URL", "KIWOOM_WS_URL", "KIWOOM_APP_KEY", "KIWOOM_SECRET_KEY", KIWOOM_WS_PATH),
}
STANDBY_MODES = ("hot", "cold")
DEFAULT_MAX_SUBSCRIPTIONS = 40  # KIS allows about 41 registrations a session (docs/architecture.md); keep one spare


class ConfigError(ValueError):
    """A setting is missing or malformed: one line naming the setting."""


@dataclass(frozen=True)
class AppKey:
    app_key: str
    app_secret: str = field(repr=False)

    @property
    def label(self) -> str:
        """Safe to log: never the key itself."""
        return f"...{self.app_key[-4:]}" if len(self.app_key) > 8 else "app key"


@dataclass(frozen=True)
class FeedSource:
    name: str  # "primary" | "secondary"
    broker: str  # "kis" | "kiwoom"
    base_url: str
    ws_url: str
    keys: tuple[AppKey, ...]


def ws_url_from_base(base_url: str, path: str = WS_PATH) -> str:
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


def sources_from_env(env: Mapping[str, str], source: str = "kis",
                     fallback: str | None = None) -> tuple[list[FeedSource], list[str]]:
    """(configured sources, one problem line per missing or bad setting).

    The primary streams from `source`; the secondary (failover) is the `fallback` broker when
    given, else a second KIS key (KIS_SECONDARY_*) when the primary is KIS and one is set."""
    if source not in BROKERS or (fallback is not None and fallback not in BROKERS):
        raise ConfigError(f"unknown broker: use one of {', '.join(BROKERS)}")
    if fallback == source:
        raise ConfigError(f"--fallback {fallback} is the --source itself: name the other broker")
    problems: list[str] = []
    primary = _broker_source(env, source, "primary", problems)
    sources = [primary] if primary is not None else []
    if fallback is not None:
        secondary = _broker_source(env, fallback, "secondary", problems)
        if secondary is not None and sources:
            sources.append(secondary)
    elif source == "kis" and sources:
        key = _key(env, "KIS_SECONDARY_APP_KEY", "KIS_SECONDARY_APP_SECRET", problems, required=False)
        if key is not None:
            base2 = env.get("KIS_SECONDARY_BASE_URL", "").strip() or primary.base_url
            ws2 = env.get("KIS_SECONDARY_WS_URL", "").strip() or (
                ws_url_from_base(base2) if env.get("KIS_SECONDARY_BASE_URL") else primary.ws_url)
            sources.append(FeedSource("secondary", "kis", base2, ws2, (key,)))
    return sources, problems


def _broker_source(env: Mapping[str, str], broker: str, name: str, problems: list[str]) -> FeedSource | None:
    """One broker's feed from its settings (ENV_NAMES), or None with the problems added."""
    base_var, ws_var, key_var, secret_var, path = ENV_NAMES[broker]
    base = env.get(base_var, "").strip()
    if not base:
        label, credential = BROKER_LABELS[broker]
        problems.append(f"{base_var} is not set: the {label} REST endpoint ({credential}) is unknown")
    elif "://" not in base:
        problems.append(f"{base_var}={base!r} is not a URL (expected http(s)://host[:port])")
        base = ""
    ws = env.get(ws_var, "").strip() or (ws_url_from_base(base, path) if base else "")
    keys: list[AppKey] = []
    first = _key(env, key_var, secret_var, problems, required=True)
    if first:
        keys.append(first)
        n = 2
        while True:
            extra = _key(env, f"{key_var}_{n}", f"{secret_var}_{n}", problems, required=False)
            if extra is None:
                break
            keys.append(extra)
            n += 1
    if base and keys:
        return FeedSource(name, broker, base, ws, tuple(keys))
    return None


def _key(env, key_var: str, secret_var: str, problems: list[str], required: bool) -> AppKey | None:
    key, secret = env.get(key_var, "").strip(), env.get(secret_var, "").strip()
    if key and secret:
        return AppKey(key, secret)
    if key or secret or required:
        missing = [name for name, value in ((key_var, key), (secret_var, secret)) if not value]
        problems.append(f"{' and '.join(missing)} not set in the environment")
    return None


def parse_symbols(text: str) -> list[str]:
    """`--symbols FILE|LIST`: a file of codes (one a line or comma separated, # comments) or a
    comma-separated list. Order kept, duplicates removed; a bad code raises ConfigError naming it."""
    path = Path(text)
    try:
        is_file = path.is_file()
    except OSError:  # a long list is not a valid file name (ENAMETOOLONG)
        is_file = False
    if is_file:
        raw = " ".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    elif "," in text or is_valid_symbol(text.strip()):
        raw = text
    else:
        raise ConfigError(
            f"--symbols {text!r}: no such file, and not a comma-separated list of 6-character codes")
    codes = [c.strip().upper() for c in raw.replace(",", " ").split() if c.strip()]
    bad = [c for c in codes if not is_valid_symbol(c)]
    if bad:
        raise ConfigError(f"--symbols: not KRX short codes ([0-9A-Z]{{6}}): {', '.join(bad[:5])}")
    if not codes:
        raise ConfigError("--symbols: no symbols given")
    return list(dict.fromkeys(codes))


def shard(symbols: list[str], per_session: int = DEFAULT_MAX_SUBSCRIPTIONS) -> list[tuple[str, ...]]:
    """Split symbols into the fewest sessions of at most `per_session`, sizes as even as possible."""
    if per_session < 1:
        raise ConfigError(f"subscriptions per session must be >= 1, not {per_session}")
    count = max(1, math.ceil(len(symbols) / per_session))
    size = math.ceil(len(symbols) / count)
    return [tuple(symbols[i:i + size]) for i in range(0, len(symbols), size)]


@dataclass(frozen=True)
class CollectorSettings:
    """Tunables (environment STOCK_PIPELINES_COLLECTOR_*; tests pass them directly)."""

    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    sessions_per_key: int | None = None  # real KIS: one session per app key; the simulator has no limit
    heartbeat_wall_s: float = 5.0
    stall_minutes: float = 5.0  # exchange minutes of silence in continuous trading
    prime_minutes: float = 5.0  # connect this long before the open (08:55)
    linger_minutes: float = 5.0  # stay connected this long after the close (the closing print)
    backoff_base_s: float = 1.0  # wall seconds
    backoff_cap_s: float = 60.0
    failover_after: int = 3  # consecutive failures of the active primary before switching
    failback_probe_s: float = 60.0  # wall seconds between probes of the primary while on the secondary
    probe_hold_s: float = 2.0
    flush_interval_s: float = 0.2  # wall seconds: what a SIGKILL can lose
    fsync_interval_s: float = 1.0
    durability_margin_s: float = 0.5  # wall seconds a beat is back-dated (see StatusPublisher.durable_now)
    connect_timeout_s: float = 10.0
    # "hot": with a secondary, both sources' sessions stream all the time and the guard keeps each
    # trade once, so a fail-over loses nothing; "cold": the secondary connects on the primary's
    # first failure (half the sessions, but the trades before it is subscribed are lost)
    standby: str = "hot"

    def __post_init__(self) -> None:
        if self.standby not in STANDBY_MODES:
            raise ConfigError(f"standby {self.standby!r}: use one of {', '.join(STANDBY_MODES)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CollectorSettings:
        values = {}
        for name, kind in (("max_subscriptions", int), ("sessions_per_key", int), ("heartbeat_wall_s", float),
                           ("stall_minutes", float), ("prime_minutes", float), ("linger_minutes", float),
                           ("backoff_base_s", float), ("backoff_cap_s", float), ("failover_after", int),
                           ("failback_probe_s", float), ("flush_interval_s", float),
                           ("fsync_interval_s", float),
                           ("durability_margin_s", float), ("standby", str)):
            var = f"STOCK_PIPELINES_COLLECTOR_{name.upper()}"
            text = env.get(var, "").strip()
            if text:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise ConfigError(f"{var}={text!r} is not a {kind.__name__}") from None
        return cls(**values)
