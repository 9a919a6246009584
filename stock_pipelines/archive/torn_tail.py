"""A torn tail: the bytes after a file's last newline, what a machine crash left mid-line. Moved
to the collector's quarantine, and the file cut back to whole lines, before the writer appends."""

from __future__ import annotations

import os
from pathlib import Path

from stock_pipelines import atomic_files
from stock_pipelines.archive import layout


def cut_torn_tail(root: Path, collector_id: str, path: Path, fd: int) -> dict | None:
    """Quarantine the torn tail of `path` (open as `fd`) and truncate it to whole lines; the
    TORN_TAIL event's detail, or None when the file ends in a newline (or is empty)."""
    size = os.fstat(fd).st_size
    if size == 0 or _last_byte(path, size) == b"\n":
        return None
    keep = _last_newline_end(path, size)
    with path.open("rb") as handle:
        handle.seek(keep)
        tail = handle.read()
    quarantine = layout.torn_tail_path(root, collector_id, path, keep)
    created = atomic_files.makedirs(quarantine.parent)
    with atomic_files.replacing(quarantine) as handle:
        handle.write(tail)
    for directory in created:
        atomic_files.fsync_dir(directory)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return {"file": str(path), "offset": keep, "bytes": len(tail), "quarantine": str(quarantine)}


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def _last_newline_end(path: Path, size: int) -> int:
    """Offset just past the last b"\\n" (0 if none), reading backwards in blocks."""
    block = 64 * 1024
    with path.open("rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            index = chunk.rfind(b"\n")
            if index >= 0:
                return start + index + 1
            end = start
    return 0
