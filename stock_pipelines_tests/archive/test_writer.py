"""The crash-safe writer: whole lines, rolling, loss window, torn tails, disk floor, permissions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.archive.record import TradeRecord
from stock_pipelines.archive.ticks import ingest_day
from stock_pipelines.archive.writer import ArchivePermissionError, ArchiveWriter, DiskSpaceLow, WriterPolicy
from stock_pipelines.market import krx_calendar

from stock_pipelines_tests.capabilities import require_capability

from .conftest import DAY, Clock, seoul_us

SESSION = krx_calendar().session(DAY)


def system_events(root: Path, collector: str = "kis-1") -> list[str]:
    path = root / collector / "system" / f"{DAY:%Y%m%d}.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_trades_roll_hourly_system_daily_and_every_line_is_whole(tmp_path):
    clock = Clock(seoul_us(9, 59, 59))
    with ArchiveWriter(tmp_path, "kis-1", WriterPolicy(min_free_bytes=0), clock=clock) as writer:
        writer.trade("kis", "005930", seoul_us(9, 59, 59), 100, 1, 1)
        clock.set_us(seoul_us(10, 0, 0))
        writer.trade("kis", "005930", seoul_us(10, 0, 0), 100, 1, 2)
        writer.write_system("UP", {"version": 1})
    day_dir = tmp_path / "kis-1" / "trades" / "20261120"
    assert sorted(p.name for p in day_dir.iterdir()) == ["09_00.jsonl", "10_00.jsonl"]
    for path in day_dir.iterdir():
        data = path.read_bytes()
        assert data.endswith(b"\n") and len(data.splitlines()) == 1
        assert json.loads(data)["v"] == 1
    assert system_events(tmp_path) == ["UP"]
    assert [json.loads(p.read_text())["seq"] for p in sorted(day_dir.iterdir())] == [1, 2]


def test_loss_window_lines_reach_the_file_within_the_flush_interval(tmp_path):
    policy = WriterPolicy(flush_interval_s=0.2, fsync_interval_s=1.0, min_free_bytes=0)
    assert policy.loss_window_s == 1.0
    clock = Clock(seoul_us(9, 30))
    writer = ArchiveWriter(tmp_path, "kis-1", policy, clock=clock)
    writer.trade("kis", "005930", seoul_us(9, 30), 100, 1, 1)
    path = tmp_path / "kis-1" / "trades" / "20261120" / "09_00.jsonl"
    assert not path.exists() or path.stat().st_size == 0  # buffered, inside the window
    clock.now += 0.25
    writer.tick()
    assert len(path.read_bytes().splitlines()) == 1
    writer.close()


def test_torn_tail_is_cut_into_quarantine_on_reopen_and_reported(tmp_path):
    clock = Clock(seoul_us(9, 10))
    events = []
    with ArchiveWriter(tmp_path, "kis-1", WriterPolicy(min_free_bytes=0), clock=clock) as writer:
        for cum in (1, 2, 3):
            writer.trade("kis", "005930", seoul_us(9, 10), 100, 1, cum)
    path = tmp_path / "kis-1" / "trades" / "20261120" / "09_00.jsonl"
    whole = path.read_bytes()
    with path.open("ab") as handle:  # what a machine crash mid-write leaves
        handle.write(b'{"src":"kis","sym":"0059')
    with ArchiveWriter(
        tmp_path, "kis-1", WriterPolicy(min_free_bytes=0), clock=clock, on_event=events.append
    ) as w:
        w.trade("kis", "005930", seoul_us(9, 10), 100, 1, 4)
    assert path.read_bytes().startswith(whole) and len(path.read_bytes().splitlines()) == 4
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
    torn = list((tmp_path / "kis-1" / "quarantine" / "20261120").iterdir())
    assert [p.read_bytes() for p in torn] == [b'{"src":"kis","sym":"0059']
    assert [e.event for e in events] == ["TORN_TAIL"]
    assert events[0].detail["offset"] == len(whole) and events[0].detail["bytes"] == 24
    assert system_events(tmp_path) == ["TORN_TAIL"]
    result = ingest_day([(tmp_path, "")], DAY, SESSION)
    assert (result.stats.rows_kept, result.stats.quarantined_by_reason) == (4, {"torn_tail": 1})
    assert result.quarantine["raw"].to_list() == ['{"src":"kis","sym":"0059']


def test_free_space_floor_stops_cleanly_reports_once_and_resumes(tmp_path):
    clock = Clock(seoul_us(9, 10))
    events = []
    writer = ArchiveWriter(
        tmp_path,
        "kis-1",
        WriterPolicy(min_free_bytes=1 << 62, disk_check_interval_s=1.0),
        clock=clock,
        on_event=events.append,
    )
    # trades reach the writer after they executed, not always in execution order across symbols
    for cum, executed in ((1, seoul_us(9, 9, 50)), (2, seoul_us(9, 9, 30))):
        with pytest.raises(DiskSpaceLow, match="free space below the floor"):
            writer.trade("kis", "005930", executed, 100, 1, cum)
        clock.now += 2
    assert writer.lines_refused == 2 and writer.disk_low
    writer.min_free_bytes = 0  # space came back
    clock.now += 2
    writer.trade("kis", "005930", seoul_us(9, 10), 100, 1, 3)
    writer.close()
    assert [e.event for e in events] == ["DISK_LOW", "DISK_OK"]
    assert events[1].detail["refused_lines"] == 2
    # the loss starts at the oldest refused trade, not at the events' own times
    assert events[0].detail["from_us"] == seoul_us(9, 9, 50) and events[0].at > seoul_us(9, 9, 50)
    assert events[1].detail["refused_from_us"] == seoul_us(9, 9, 30)
    assert system_events(tmp_path) == ["DISK_LOW", "DISK_OK"]
    assert writer.lines_written == 1


@pytest.fixture
def tiny_tmpfs():
    require_capability("root", os.geteuid() == 0, "mounting a tmpfs needs root")
    require_capability("mount", shutil.which("mount") is not None, "no mount binary (Debian package mount)")
    mount_point = Path(tempfile.mkdtemp(prefix="archive-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        mount_point.rmdir()
    require_capability("tmpfs mount", done.returncode == 0,
                       f"mount -t tmpfs refused ({done.stderr.decode().strip()}): a container needs CAP_SYS_ADMIN")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], timeout=10, check=False)
        mount_point.rmdir()


def test_a_really_full_disk_leaves_only_whole_lines_and_loses_nothing_accepted(tiny_tmpfs):
    filler = tiny_tmpfs / "filler"
    free = os.statvfs(tiny_tmpfs).f_bavail * os.statvfs(tiny_tmpfs).f_frsize
    filler.write_bytes(b"\0" * (free - 12 * 1024))
    clock = Clock(seoul_us(9, 10))
    writer = ArchiveWriter(
        tiny_tmpfs / "archive", "kis-1", WriterPolicy(min_free_bytes=0, max_buffer_bytes=1), clock=clock
    )
    accepted = 0
    with pytest.raises(DiskSpaceLow, match="disk full"):
        for cum in range(1, 10_000):
            writer.write_trade(
                TradeRecord("kis", "005930", seoul_us(9, 10), seoul_us(9, 10), 100, 1, cum, cum)
            )
            accepted += 1
    path = tiny_tmpfs / "archive" / "kis-1" / "trades" / "20261120" / "09_00.jsonl"
    lines = path.read_bytes()
    assert lines.endswith(b"\n") and all(json.loads(line) for line in lines.splitlines())  # no torn line
    filler.unlink()
    clock.now += 5
    writer.close()  # the line refused by the full disk was kept in memory and is written now
    written = path.read_bytes().splitlines()
    assert [json.loads(line)["cum"] for line in written] == list(range(1, accepted + 2))
    assert "DISK_LOW" in system_events(tiny_tmpfs / "archive")


@contextlib.contextmanager
def as_nobody():
    """Effective uid/gid of `nobody` for the block (root ignores permissions, nobody does not)."""
    require_capability("root", os.geteuid() == 0, "switching to the nobody user needs root")
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dirs():
    base = Path(tempfile.mkdtemp(prefix="archive-perm-"))
    base.chmod(0o755)
    locked, fallback = base / "locked", base / "fallback"
    locked.mkdir(mode=0o755)
    fallback.mkdir()
    fallback.chmod(0o777)
    yield locked, fallback
    shutil.rmtree(base)


def test_permission_error_names_the_path_and_the_fix(shared_dirs):
    locked, _ = shared_dirs
    clock = Clock(seoul_us(9, 10))
    with as_nobody(), pytest.raises(ArchivePermissionError) as raised:
        ArchiveWriter(locked, "kis-1", WriterPolicy(min_free_bytes=0), clock=clock)
    message = str(raised.value)
    assert str(locked / "kis-1") in message
    assert "permission denied" in message and "Fix:" in message and "chown" in message
    assert "STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR" in message


def test_permission_error_switches_to_the_fallback_directory(shared_dirs):
    locked, fallback = shared_dirs
    clock = Clock(seoul_us(9, 10))
    events = []
    with (
        as_nobody(),
        ArchiveWriter(
            locked,
            "kis-1",
            WriterPolicy(min_free_bytes=0),
            clock=clock,
            fallback_root=fallback,
            on_event=events.append,
        ) as writer,
    ):
        writer.trade("kis", "005930", seoul_us(9, 10), 100, 1, 1)
    assert [e.event for e in events] == ["FALLBACK"] and writer.root == fallback
    assert [p.name for p in (fallback / "kis-1" / "trades").rglob("*.jsonl")] == ["09_00.jsonl"]
    assert system_events(fallback) == ["FALLBACK"]
    assert not any(locked.iterdir())


def test_permission_lost_while_running_raises_at_the_flush(shared_dirs):
    _, writable = shared_dirs
    clock = Clock(seoul_us(9, 10))
    with as_nobody():
        writer = ArchiveWriter(writable, "kis-1", WriterPolicy(min_free_bytes=0), clock=clock)
        writer.trade("kis", "005930", seoul_us(9, 10), 100, 1, 1)
    os.chown(writable / "kis-1", 0, 0)  # root-owned after the fact: nobody can no longer create trades/
    (writable / "kis-1").chmod(0o755)
    with as_nobody(), pytest.raises(ArchivePermissionError, match="trades/20261120/09_00.jsonl"):
        writer.flush()


def test_from_config_uses_the_configured_archive_and_floor(archive_env):
    config = ArchiveConfig.from_env(
        {"STOCK_PIPELINES_ARCHIVE_DIR": str(archive_env), "STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES": "12345"}
    )
    with ArchiveWriter.from_config(config, "kis-1", flush_interval_s=0.5) as writer:
        assert writer.root == archive_env and writer.min_free_bytes == 12345
        assert writer.policy.flush_interval_s == 0.5
    assert (archive_env / "kis-1").is_dir()
