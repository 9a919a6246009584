"""The writer's disk-space floor: below `min_free_bytes` free it refuses lines. Free space is
measured at most every `check_interval_s`; crossing the floor is reported once each way
(DISK_LOW, then DISK_OK when space returns, with what was refused meanwhile).

An operator can move the floor of running collectors without restarting them (their WebSocket
sessions and the day's trades go on): a whole number of bytes in `<archive root>/disk-floor-bytes`
replaces the configured floor at the next check (raise it before a big copy lands on the disk,
lower it to keep collecting on a nearly full one); deleting the file restores the configured
floor. Each change is a DISK_FLOOR_SET event; a file that is not a number is reported once
(DISK_FLOOR_INVALID) and the floor stays where it was."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from stock_pipelines.archive.record import TradeRecord

DISK_LOW, DISK_OK = "DISK_LOW", "DISK_OK"
DISK_FLOOR_SET, DISK_FLOOR_INVALID = "DISK_FLOOR_SET", "DISK_FLOOR_INVALID"
OPERATOR_FLOOR_FILE = "disk-floor-bytes"


def read_operator_floor(root: Path) -> tuple[int | None, str | None]:
    """(floor, problem): the operator's floor in `<root>/disk-floor-bytes`, None when there is no
    such file; `problem` says what is wrong with a file that holds no whole number of bytes."""
    path = root / OPERATOR_FLOOR_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path}: unreadable ({getattr(error, 'strerror', None) or error})"
    if not re.fullmatch(r"[0-9]{1,20}", text):
        return None, f"{path}: {text[:40]!r} is not a whole number of bytes"
    return int(text), None


class DiskFloor:
    def __init__(
        self,
        min_free_bytes: int,
        check_interval_s: float,
        clock: Callable[[], float],
        emit: Callable[[str, dict], object],
        flush_all: Callable[[bool], None],
    ) -> None:
        self.configured_bytes = min_free_bytes  # STOCK_PIPELINES_ARCHIVE_MIN_FREE_BYTES
        self.min_free_bytes = min_free_bytes  # in force: the operator's file, else the configured floor
        self._invalid_reported: str | None = None
        self.check_interval_s = check_interval_s
        self.clock = clock
        self._emit = emit  # a system event of the writer
        self._flush_all = flush_all  # the writer's buffers to disk (fsync: bool)
        self.low = False
        self.refused_from_us: int | None = None  # oldest trade refused in this DISK_LOW stretch
        self._last_check = float("-inf")

    def refuses(self, root: Path, refused_lines: int, records: Sequence[TradeRecord] = ()) -> bool:
        """Whether lines are refused now; measures free space when a check is due."""
        now = self.clock()
        if now - self._last_check < self.check_interval_s and not self.low:
            return False
        if self.low and now - self._last_check < self.check_interval_s:
            return True
        self._last_check = now
        self._follow_operator(root)
        free = _free_bytes(root)
        if free < self.min_free_bytes and not self.low:
            self.enter_low(f"{free} bytes free < floor {self.min_free_bytes}", root, oldest_ts(records))
        elif free >= self.min_free_bytes and self.low:
            self.low = False
            detail = {"free_bytes": free, "floor_bytes": self.min_free_bytes, "refused_lines": refused_lines}
            if self.refused_from_us is not None:
                detail["refused_from_us"] = self.refused_from_us
            self.refused_from_us = None
            self._emit(DISK_OK, detail)
        return self.low

    def configure(self, min_free_bytes: int) -> None:
        self.configured_bytes = self.min_free_bytes = min_free_bytes

    def _follow_operator(self, root: Path) -> None:
        floor, problem = read_operator_floor(root)
        if problem is not None:
            if problem != self._invalid_reported:  # once per distinct problem, not every check
                self._invalid_reported = problem
                self._emit(DISK_FLOOR_INVALID, {"problem": problem, "floor_bytes": self.min_free_bytes})
            return  # a file caught mid-write must not drop an operator's raised floor
        self._invalid_reported = None
        wanted = self.configured_bytes if floor is None else floor
        if wanted != self.min_free_bytes:
            self.min_free_bytes = wanted
            source = "configured" if floor is None else str(root / OPERATOR_FLOOR_FILE)
            self._emit(DISK_FLOOR_SET, {"floor_bytes": wanted, "configured_bytes": self.configured_bytes,
                                        "source": source})

    def refused(self, records: Sequence[TradeRecord]) -> None:
        """Note trades refused: the stretch's loss starts at the oldest of them."""
        oldest = oldest_ts(records)
        if oldest is not None and (self.refused_from_us is None or oldest < self.refused_from_us):
            self.refused_from_us = oldest

    def enter_low(self, why: str, root: Path, refusing_from_us: int | None = None) -> None:
        """`refusing_from_us`: the oldest execution time of the trades about to be refused. A
        collector hands trades over some time after they executed, so the loss starts there,
        possibly well before this event's own time."""
        if self.low:
            return
        self.low = True
        self._last_check = self.clock()
        self._flush_all(True)  # what was accepted before the floor goes to disk (the floor is headroom)
        detail = {"reason": why, "floor_bytes": self.min_free_bytes, "root": str(root)}
        if refusing_from_us is not None:
            detail["from_us"] = refusing_from_us
        self._emit(DISK_LOW, detail)


def _free_bytes(root: Path) -> int:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def oldest_ts(records: Sequence[TradeRecord]) -> int | None:
    """Taken only when trades are refused: the check runs off the collector's hot path."""
    return min((r.ts for r in records), default=None)
