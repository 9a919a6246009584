"""The crash-safe archive writer collectors use.

Guarantees (docs/archive-format.md, "Writer"):
- whole lines only: lines are buffered and written with one `os.write` on an O_APPEND file;
  a short or failed write is truncated back to the file's previous size, so no torn line is
  left behind by a full disk;
- bounded loss window: buffered lines reach the OS at least every `flush_interval_s` and the
  disk (fsync) at least every `fsync_interval_s`, provided the collector calls a write method
  or `tick()` that often; a new file's directory (and every directory created) is fsynced;
- torn tail: when a file that does not end in "\\n" is (re)opened, the bytes after its last
  newline (what a machine crash left mid-line) are moved to `<collector>/quarantine/...` and
  the file is truncated to whole lines; a TORN_TAIL event records it (`torn_tail`);
- disk-space floor: below `min_free_bytes` free the writer refuses lines (`DiskSpaceLow`),
  emits DISK_LOW once, and emits DISK_OK and accepts lines again when space returns; an
  operator's `<root>/disk-floor-bytes` moves the floor at run time (`disk_floor`);
- permission errors name the path and the fix, or switch to `fallback_root` (FALLBACK event).
Events go to the system stream and to the optional `on_event(SystemRecord)` hook (the place
for the Redis event once the heartbeat issue defines it).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from stock_pipelines.archive import layout
from stock_pipelines.archive.config import ArchiveConfig
from stock_pipelines.archive.disk_floor import DiskFloor
from stock_pipelines.archive.record import SystemRecord, TradeRecord
from stock_pipelines.archive.torn_tail import cut_torn_tail
from stock_pipelines.atomic_files import fsync_dir, makedirs

UP, DOWN = "UP", "DOWN"
TORN_TAIL, FALLBACK, WRITE_ERROR = "TORN_TAIL", "FALLBACK", "WRITE_ERROR"


class ArchiveWriteError(OSError):
    pass


class DiskSpaceLow(ArchiveWriteError):
    pass


class ArchivePermissionError(ArchiveWriteError, PermissionError):
    pass


@dataclass(frozen=True)
class WriterPolicy:
    flush_interval_s: float = 0.2  # a killed process loses at most this much
    fsync_interval_s: float = 1.0  # a crashed machine loses at most this much
    max_buffer_bytes: int = 256 * 1024
    min_free_bytes: int = 256 * 1024 * 1024
    disk_check_interval_s: float = 1.0

    @property
    def loss_window_s(self) -> float:
        return max(self.flush_interval_s, self.fsync_interval_s)


class _Stream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path: Path | None = None  # the open file
        self.fd: int | None = None
        self.buffer_path: Path | None = None  # where the buffered lines belong (their write time)
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.dirty = False  # written since the last fsync


class ArchiveWriter:
    def __init__(
        self,
        root: Path,
        collector_id: str,
        policy: WriterPolicy | None = None,
        *,
        fallback_root: Path | None = None,
        on_event: Callable[[SystemRecord], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collector_id = layout.check_collector_id(collector_id)
        self.root = Path(root)
        self.fallback_root = Path(fallback_root) if fallback_root is not None else None
        self.policy = policy or WriterPolicy()
        self.on_event = on_event
        self.clock = clock
        self.lines_written = 0
        self.lines_refused = 0
        self._disk = DiskFloor(self.policy.min_free_bytes, self.policy.disk_check_interval_s, clock,
                               emit=self._emit, flush_all=self._flush_all)
        self._seq = 0
        self._lock = threading.RLock()
        self._trades = _Stream(layout.TRADES)
        self._system = _Stream(layout.SYSTEM)
        self._last_flush = self._last_fsync = clock()
        self._in_flush = False
        self._closed = False
        self._check_writable()

    @classmethod
    def from_config(
        cls,
        config: ArchiveConfig,
        collector_id: str,
        *,
        on_event: Callable[[SystemRecord], None] | None = None,
        **policy: float,
    ) -> ArchiveWriter:
        """A writer on the configured archive root (and fallback root, and free-space floor)."""
        return cls(
            config.archive_dir,
            collector_id,
            WriterPolicy(min_free_bytes=config.min_free_bytes, **policy),  # type: ignore[arg-type]
            fallback_root=config.fallback_dir,
            on_event=on_event,
        )

    # -- public ------------------------------------------------------------------------

    @property
    def min_free_bytes(self) -> int:
        return self._disk.min_free_bytes

    @min_free_bytes.setter
    def min_free_bytes(self, value: int) -> None:
        self._disk.configure(value)

    @property
    def disk_low(self) -> bool:
        """Below the free-space floor: lines are refused until space returns."""
        return self._disk.low

    def trade(
        self, src: str, sym: str, ts: int, px: int, qty: int, cum: int, rx: int | None = None
    ) -> TradeRecord:
        """Write one trade with the writer's next sequence number; rx defaults to now."""
        with self._lock:
            record = TradeRecord(
                src, sym, ts, rx if rx is not None else self._now_us(), px, qty, cum, self._seq + 1
            )
            self.write_trade(record)
            return record

    def write_trade(self, record: TradeRecord) -> None:
        self.write_trades([record])

    def write_trades(self, records: list[TradeRecord]) -> None:
        with self._lock:
            self._check_open()
            if self._disk.refuses(self.root, self.lines_refused, records):
                self.lines_refused += len(records)
                self._disk.refused(records)
                raise DiskSpaceLow(
                    f"archive {self.root}: free space below the floor of {self.min_free_bytes} bytes; "
                    f"{len(records)} line(s) refused (writing resumes when space returns)"
                )
            for record in records:
                self._seq = max(self._seq, record.seq)
                self._append(self._trades, record.to_json_line().encode())
            self._maybe_flush()

    def write_system(self, event: str, detail: dict | None = None) -> SystemRecord:
        with self._lock:
            return self._emit(event, detail)

    def tick(self) -> None:
        """Flush and fsync if due; call it at least every flush interval when idle."""
        with self._lock:
            if not self._closed:
                self._maybe_flush()

    def flush(self, fsync: bool = True) -> None:
        with self._lock:
            self._flush_all(fsync)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_all(True)
            finally:
                for stream in (self._trades, self._system):
                    self._close_stream(stream)
                self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- buffering ---------------------------------------------------------------------

    def _append(self, stream: _Stream, line: bytes) -> None:
        target = self._target(stream)
        if stream.buffer and stream.buffer_path != target:  # the hour (or day) rolled
            self._flush_stream(stream, fsync=True)
        if stream.path is not None and stream.path != target and not stream.buffer:
            self._close_stream(stream)
        if not stream.buffer:
            stream.buffer_path = target
        stream.buffer.append(line)
        stream.buffered += len(line)

    def _maybe_flush(self) -> None:
        now = self.clock()
        due_flush = now - self._last_flush >= self.policy.flush_interval_s
        big = self._trades.buffered >= self.policy.max_buffer_bytes
        due_fsync = now - self._last_fsync >= self.policy.fsync_interval_s
        if due_flush or big or due_fsync:
            self._flush_all(due_fsync)

    def _flush_all(self, fsync: bool) -> None:
        for stream in (self._trades, self._system):
            self._flush_stream(stream, fsync)
        now = self.clock()
        self._last_flush = now
        if fsync:
            self._last_fsync = now

    def _flush_stream(self, stream: _Stream, fsync: bool) -> None:
        if self._in_flush:
            return
        self._in_flush = True
        try:
            while stream.buffer:
                assert stream.buffer_path is not None
                if stream.fd is not None and stream.path != stream.buffer_path:
                    self._close_stream(stream)
                if stream.fd is None:
                    self._open(stream, stream.buffer_path)
                data = b"".join(stream.buffer)
                count = len(stream.buffer)
                self._write_whole(stream, data)
                stream.buffer, stream.buffered = [], 0
                stream.dirty = True
                if stream is self._trades:
                    self.lines_written += count
            if fsync and stream.dirty and stream.fd is not None:
                os.fsync(stream.fd)
                stream.dirty = False
        finally:
            self._in_flush = False
        if self._system.buffer:  # events raised while opening a file (TORN_TAIL, FALLBACK)
            self._flush_stream(self._system, True)

    def _write_whole(self, stream: _Stream, data: bytes) -> None:
        assert stream.fd is not None
        before = os.fstat(stream.fd).st_size
        try:
            written = os.write(stream.fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write", str(stream.path))
        except OSError as error:
            os.ftruncate(stream.fd, before)  # never leave part of a line behind
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                self._disk.enter_low(f"{error.strerror} writing {stream.path}", self.root)
                raise DiskSpaceLow(
                    f"archive file {stream.path}: disk full ({error.strerror}); lines kept in memory "
                    "and retried when space returns"
                ) from error
            raise ArchiveWriteError(f"archive file {stream.path}: write failed: {error}") from error

    # -- files -------------------------------------------------------------------------

    def _target(self, stream: _Stream) -> Path:
        moment = datetime.fromtimestamp(self.clock(), UTC)
        if stream is self._trades:
            return layout.trades_path(self.root, self.collector_id, moment)
        return layout.system_path(self.root, self.collector_id, moment)

    def _open(self, stream: _Stream, path: Path) -> None:
        try:
            created = makedirs(path.parent)
            existed = path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError as error:
            if self.fallback_root is not None and self.root != self.fallback_root:
                previous, self.root = self.root, self.fallback_root
                for other in (self._trades, self._system):
                    if other.buffer_path is not None and other.buffer_path.is_relative_to(previous):
                        other.buffer_path = self.root / other.buffer_path.relative_to(previous)
                self._emit(
                    FALLBACK, {"from": str(previous), "to": str(self.root), "error": str(error)}, flush=False
                )
                self._open(stream, self.root / path.relative_to(previous))
                return
            raise self._permission_error(path, error) from error
        for directory in created:
            fsync_dir(directory)
        if not existed:
            fsync_dir(path.parent)
        elif (torn := cut_torn_tail(self.root, self.collector_id, path, fd)) is not None:
            self._emit(TORN_TAIL, torn, flush=False)
        stream.path, stream.fd = path, fd

    def _check_writable(self) -> None:
        """Fail at start-up, not at the first flush, when the archive root cannot be written."""
        collector_dir = self.root / self.collector_id
        try:
            for directory in makedirs(collector_dir):
                fsync_dir(directory)
            if not os.access(collector_dir, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "Permission denied", str(collector_dir))
        except PermissionError as error:
            if self.fallback_root is None or self.root == self.fallback_root:
                raise self._permission_error(collector_dir, error) from error
            previous, self.root = self.root, self.fallback_root
            self._emit(FALLBACK, {"from": str(previous), "to": str(self.root), "error": str(error)})

    def _permission_error(self, path: Path, error: OSError) -> ArchivePermissionError:
        return ArchivePermissionError(
            f"cannot write archive path {path}: permission denied ({error.filename or path}). "
            f"Fix: give the collector's user write access (e.g. `chown -R $(id -un) {self.root}` or "
            f"`chmod -R u+w {self.root}`), or set a fallback archive directory "
            "(STOCK_PIPELINES_ARCHIVE_FALLBACK_DIR)."
        )

    def _close_stream(self, stream: _Stream) -> None:
        if stream.fd is not None:
            if stream.dirty:
                os.fsync(stream.fd)
                stream.dirty = False
            os.close(stream.fd)
        stream.fd, stream.path = None, None

    # -- events ------------------------------------------------------------------------

    def _emit(self, event: str, detail: dict | None, flush: bool = True) -> SystemRecord:
        record = SystemRecord(event, self._now_us(), self.collector_id, detail)
        self._append(self._system, record.to_json_line().encode())
        if self.on_event is not None:
            self.on_event(record)
        if flush and not self._in_flush:
            self._flush_stream(self._system, True)
        return record

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _check_open(self) -> None:
        if self._closed:
            raise ArchiveWriteError(f"archive writer for {self.collector_id} is closed")

