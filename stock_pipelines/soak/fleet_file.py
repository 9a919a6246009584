"""The soak's fleet: both brokers, KIS collectors with a Kiwoom fallback and a Kiwoom collector,
on the exchange's clock; and the environment every soak process shares."""

from __future__ import annotations

from pathlib import Path

import yaml

from stock_pipelines.sim.day import universe

# variable names the fleet file points at; the values are throw-away keys the simulator accepts
KEYS = {"SOAK_KIS_KEY": "soak-kis-key", "SOAK_KIS_SECRET": "soak-kis-secret",
        "SOAK_KIWOOM_KEY": "soak-kiwoom-key", "SOAK_KIWOOM_SECRET": "soak-kiwoom-secret"}
KIS_PAIR = {"key_env": "SOAK_KIS_KEY", "secret_env": "SOAK_KIS_SECRET"}
KIWOOM_PAIR = {"key_env": "SOAK_KIWOOM_KEY", "secret_env": "SOAK_KIWOOM_SECRET"}
COLLECTORS = (("kis-1", "kis"), ("kis-2", "kis"), ("kiwoom-1", "kiwoom"))


def symbol_groups(symbols: int) -> dict[str, list[str]]:
    """The simulator's first `symbols` codes dealt round-robin to the collectors."""
    codes = [code for code, _ in universe(symbols)]
    return {cid: codes[i::len(COLLECTORS)] for i, (cid, _) in enumerate(COLLECTORS)}


def write_fleet_file(path: Path, exchange_url: str, archive_dir: Path, status_file: Path, symbols: int) -> Path:
    collectors = []
    for cid, source in COLLECTORS:
        entry = {"id": cid, "symbols": symbol_groups(symbols)[cid], "source": source,
                 "app_keys": [KIS_PAIR if source == "kis" else KIWOOM_PAIR]}
        if source == "kis":
            entry.update(fallback="kiwoom", fallback_app_key=KIWOOM_PAIR)
        collectors.append(entry)
    document = {
        "archive_dir": str(archive_dir),
        "clock": "exchange",
        "exchange": {"kis_base_url": exchange_url, "kiwoom_base_url": exchange_url},
        "status_file": str(status_file),
        # beats every second of wall time; a crashed collector is back within a few seconds
        "collector_settings": {"HEARTBEAT_WALL_S": 1.0, "FLUSH_INTERVAL_S": 0.5},
        "restart_backoff": {"base_s": 0.5, "cap_s": 5.0},
        "stable_after_s": 20,
        "diagnosis_retry": {"base_s": 5, "cap_s": 20},
        "stop_timeout_s": 20,
        "switch_poll_s": 1,
        "collectors": collectors,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def shared_environment(base: dict[str, str], *, data_dir: Path, archive_dir: Path, redis_url: str,
                       exchange_url: str, webhook_url: str, retention_trading_days: int | None = None,
                       ) -> dict[str, str]:
    """The environment of every soak process: its own data, archive and Redis, the simulator as
    both brokers, the alert webhook at the local receiver, the archive's kept trading days when
    given. Inherited project settings are dropped so nothing of the user's deployment leaks in."""
    env = {k: v for k, v in base.items()
           if not k.startswith(("KIS_", "KIWOOM_", "STOCK_PIPELINES_", "REDIS_URL", "DAGSTER_HOME", "FEATURE_"))}
    env.update(KEYS)
    env.update({
        "REDIS_URL": redis_url,
        "STOCK_PIPELINES_DATA_DIR": str(data_dir),
        "STOCK_PIPELINES_ARCHIVE_DIR": str(archive_dir),
        "STOCK_PIPELINES_BROKER": "kis",
        "KIS_BASE_URL": exchange_url,
        "KIS_APP_KEY": KEYS["SOAK_KIS_KEY"],
        "KIS_APP_SECRET": KEYS["SOAK_KIS_SECRET"],
        "KIWOOM_BASE_URL": exchange_url,
        "KIWOOM_APP_KEY": KEYS["SOAK_KIWOOM_KEY"],
        "KIWOOM_SECRET_KEY": KEYS["SOAK_KIWOOM_SECRET"],
        "STOCK_PIPELINES_ALERT_WEBHOOK_URL": webhook_url,
        # The pre-flight's CPU headroom check would measure the soak itself: a dozen processes on
        # this machine at hundreds of times real speed load it far past 4 per CPU by design.
        "STOCK_PIPELINES_MAX_LOAD_PER_CPU": "1000",
    })
    if retention_trading_days is not None:
        env["STOCK_PIPELINES_RETENTION_TRADING_DAYS"] = str(retention_trading_days)
    return env
