"""Configuration from environment variables, each with a default that runs on this machine.

Nothing here is a secret: broker credentials are read by the broker clients themselves, from
the environment, at the moment they are needed, so they never travel through run config,
tags or metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    archive_dir: Path

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("STOCK_PIPELINES_DATA_DIR", "data")).resolve()
        archive_dir = Path(os.environ.get("STOCK_PIPELINES_ARCHIVE_DIR", str(data_dir / "archive"))).resolve()
        return cls(data_dir=data_dir, archive_dir=archive_dir)

    def lake_partition_dir(self, asset: str, day_iso: str) -> Path:
        """`<data root>/<asset>/date=YYYY-MM-DD` (docs/architecture.md, "Contracts")."""
        return self.data_dir / asset / f"date={day_iso}"
