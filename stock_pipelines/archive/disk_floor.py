"""The writer's disk-space floor: below `min_free_bytes` free it refuses lines. Free space is
measured at most every `check_interval_s`; crossing the floor is reported once each way
(DISK_LOW, then DISK_OK when space returns, with what was refused meanwhile)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from stock_pipelines.archive.record import TradeRecord

DISK_LOW, DISK_OK = "DISK_LOW", "DISK_OK"


class DiskFloor:
    def __init__(
        self,
        min_free_bytes: int,
        check_interval_s: float,
        clock: Callable[[], float],
        emit: Callable[[str, dict], object],
        flush_all: Callable[[bool], None],
    ) -> None:
        self.min_free_bytes = min_free_bytes
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
