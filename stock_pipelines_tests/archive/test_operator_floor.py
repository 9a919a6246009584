"""The operator's floor file (`<archive root>/disk-floor-bytes`): a running writer follows it at
its next free-space check, deleting it restores the configured floor, a file that is not a
number is reported once and changes nothing; the collector's self-diagnosis reads it too."""

from __future__ import annotations

import json
import shutil

import pytest

from stock_pipelines.archive.disk_floor import OPERATOR_FLOOR_FILE
from stock_pipelines.archive.writer import ArchiveWriter, DiskSpaceLow, WriterPolicy
from stock_pipelines.collector.diagnose import check_archive

from .conftest import Clock, seoul_us


def writer_with_events(root, clock, events) -> ArchiveWriter:
    return ArchiveWriter(root, "kis-1", WriterPolicy(min_free_bytes=1, disk_check_interval_s=1.0),
                         clock=clock, on_event=events.append)


def test_a_running_writer_follows_the_floor_file_and_its_removal(tmp_path):
    clock = Clock(seoul_us(9, 10))
    events = []
    writer = writer_with_events(tmp_path, clock, events)
    writer.trade("kis", "005930", seoul_us(9, 9, 59), 100, 1, 1)
    above_the_disk = shutil.disk_usage(tmp_path).total + 1
    (tmp_path / OPERATOR_FLOOR_FILE).write_text(f"{above_the_disk}\n")
    writer.trade("kis", "005930", seoul_us(9, 10), 100, 1, 2)  # the check is not due yet
    clock.now += 1.5
    with pytest.raises(DiskSpaceLow, match=f"below the floor of {above_the_disk} bytes"):
        writer.trade("kis", "005930", seoul_us(9, 10, 1), 100, 1, 3)
    assert writer.disk_low and writer.min_free_bytes == above_the_disk

    (tmp_path / OPERATOR_FLOOR_FILE).unlink()
    clock.now += 1.5
    writer.trade("kis", "005930", seoul_us(9, 10, 3), 100, 1, 4)
    writer.close()
    assert not writer.disk_low and writer.min_free_bytes == 1 and writer.lines_refused == 1
    disk = [(e.event, e.detail) for e in events if e.event.startswith("DISK")]
    assert [event for event, _ in disk] == ["DISK_FLOOR_SET", "DISK_LOW", "DISK_FLOOR_SET", "DISK_OK"]
    assert disk[0][1] == {"floor_bytes": above_the_disk, "configured_bytes": 1,
                          "source": str(tmp_path / OPERATOR_FLOOR_FILE)}
    assert disk[2][1] == {"floor_bytes": 1, "configured_bytes": 1, "source": "configured"}
    trades = (tmp_path / "kis-1" / "trades").rglob("*.jsonl")
    archived = [json.loads(line)["cum"] for path in trades for line in path.read_text().splitlines()]
    assert sorted(archived) == [1, 2, 4]


def test_a_floor_file_that_is_not_a_number_is_reported_once_and_keeps_the_floor(tmp_path):
    clock = Clock(seoul_us(9, 10))
    events = []
    writer = writer_with_events(tmp_path, clock, events)
    (tmp_path / OPERATOR_FLOOR_FILE).write_text("2 GB")
    for cum in range(1, 4):
        writer.trade("kis", "005930", seoul_us(9, 10, cum), 100, 1, cum)
        clock.now += 1.5
    writer.close()
    invalid = [e.detail for e in events if e.event == "DISK_FLOOR_INVALID"]
    assert len(invalid) == 1 and "'2 GB' is not a whole number of bytes" in invalid[0]["problem"]
    assert writer.min_free_bytes == 1 and writer.lines_refused == 0 and writer.lines_written == 3


def test_the_self_diagnosis_measures_against_the_floor_file(tmp_path):
    assert check_archive(tmp_path, "kis-1", 1) == []
    (tmp_path / OPERATOR_FLOOR_FILE).write_text(str(shutil.disk_usage(tmp_path).total + 1))
    [problem] = check_archive(tmp_path, "kis-1", 1)
    assert "below the floor of" in problem and problem.endswith(f"({tmp_path / OPERATOR_FLOOR_FILE})")
    # a file that is not a number (a typo, a half-written echo) does not keep collectors from starting:
    # the configured floor holds, and the running writer reports the file
    (tmp_path / OPERATOR_FLOOR_FILE).write_text("-5")
    assert check_archive(tmp_path, "kis-1", 1) == []
    [problem] = check_archive(tmp_path, "kis-1", shutil.disk_usage(tmp_path).total + 1)
    assert problem.endswith("(STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES)")
