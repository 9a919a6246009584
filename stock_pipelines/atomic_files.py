"""Files replaced whole: written to a temporary file beside the target and renamed over it, so a
reader sees the old version or the new one, never half; and the directory fsyncs that make a
rename or a new directory survive a machine crash."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def makedirs(directory: Path) -> list[Path]:
    """mkdir -p; returns the parents of the directories it created (each needs an fsync)."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    return [p.parent for p in reversed(missing)]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path, mode: str = "wb", *, suffix: str = ".tmp", durable: bool = True) -> Iterator[IO]:
    """A temporary file (owner-only, named `.tmp-*<suffix>`) beside `path`, renamed over it when the
    block ends cleanly and removed when it raises. `durable`: its data is fsynced before the rename
    and the directory after it, so the new version also survives a machine crash."""
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` (UTF-8), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "w", durable=durable) as handle:
        handle.write(text)


def write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data`, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb", durable=durable) as handle:
        handle.write(data)
