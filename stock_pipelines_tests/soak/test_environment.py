"""The environment every soak process gets: the full week keeps 3 trading days of archive (so its
retention runs delete the first days while it watches), the quick run the project's default; the
user's own project settings never leak in."""

from pathlib import Path

import pytest

from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.soak.fleet_file import shared_environment
from stock_pipelines.soak.options import SoakOptions


@pytest.mark.parametrize("options, kept", [(SoakOptions.full_run(), 3), (SoakOptions.quick_run(), 5)])
def test_the_archive_retention_window_the_soak_processes_read(tmp_path, options, kept):
    base = {"PATH": "/usr/bin", "STOCK_PIPELINES_RETENTION_TRADING_DAYS": "9", "REDIS_URL": "redis://elsewhere"}
    env = shared_environment(base, data_dir=tmp_path / "data", archive_dir=tmp_path / "archive",
                             redis_url="redis://127.0.0.1:1/0", exchange_url="http://127.0.0.1:2",
                             webhook_url="http://127.0.0.1:3/alerts",
                             retention_trading_days=options.retention_trading_days)
    config = ArchiveConfig.from_env(env)
    assert config.retention_trading_days == kept
    assert config.archive_dir == Path(tmp_path / "archive").resolve()
    assert env["REDIS_URL"] == "redis://127.0.0.1:1/0" and env["PATH"] == "/usr/bin"
