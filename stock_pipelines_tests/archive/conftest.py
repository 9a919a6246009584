"""Archive test helpers: an isolated archive + lake per test, and a writer on a fake clock."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from stock_pipelines.archive.writer import ArchiveWriter, WriterPolicy
from stock_pipelines.market import SEOUL

DAY = date(2026, 11, 20)  # a regular session, 09:00-15:30


def seoul_us(hour: int, minute: int, second: float = 0, day: date = DAY) -> int:
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SEOUL)
    return int(moment.timestamp() * 1_000_000) + int(second * 1_000_000)


class Clock:
    def __init__(self, now_us: int) -> None:
        self.now = now_us / 1_000_000

    def __call__(self) -> float:
        return self.now

    def set_us(self, now_us: int) -> None:
        self.now = now_us / 1_000_000


@pytest.fixture
def archive_env(tmp_path, monkeypatch) -> Path:
    """STOCK_PIPELINES_DATA_DIR / ARCHIVE_DIR under tmp_path; returns the archive root."""
    data = tmp_path / "data"
    archive = tmp_path / "archive"
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(data))
    monkeypatch.setenv("STOCK_PIPELINES_ARCHIVE_DIR", str(archive))
    for name in (
        "STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR",
        "STOCK_PIPELINES_QUARANTINE_WARN_SHARE",
        "STOCK_PIPELINES_QUARANTINE_ERROR_SHARE",
        "STOCK_PIPELINES_SESSION_TOLERANCE_S",
    ):
        monkeypatch.delenv(name, raising=False)
    return archive


def write_day(root: Path, collector: str, trades: list[tuple], rx_delay_us: int = 1_000) -> ArchiveWriter:
    """Write (src, sym, ts_us, px, qty, cum) trades as a collector would: clock = receive time."""
    clock = Clock(trades[0][2] if trades else seoul_us(9, 0))
    # fsync at the hour roll and at close only: thousands of fsyncs would just slow the tests
    policy = WriterPolicy(
        min_free_bytes=0, flush_interval_s=3600, fsync_interval_s=3600, max_buffer_bytes=1 << 20
    )
    writer = ArchiveWriter(root, collector, policy, clock=clock)
    for src, sym, ts, px, qty, cum in trades:
        clock.set_us(ts + rx_delay_us)
        writer.trade(src, sym, ts, px, qty, cum)
    writer.close()
    return writer


def session_trades(
    symbol: str = "005930",
    count: int = 50,
    src: str = "kis",
    start=(9, 0),
    step_s: float = 30,
    price: int = 70_000,
    qty: int = 10,
) -> list[tuple]:
    """`count` well-formed trades of one symbol from `start`, one every `step_s` seconds."""
    first = seoul_us(*start)
    return [
        (src, symbol, first + int(i * step_s * 1_000_000), price + i % 7, qty, qty * (i + 1))
        for i in range(count)
    ]
