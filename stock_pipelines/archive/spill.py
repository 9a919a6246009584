"""A day's compact valid rows on local disk, read back one range of symbols at a time.

raw_ticks must be sorted by symbol over the whole day, but which symbols make a range of about
a million rows is known only once every file is parsed. Holding the day's rows in memory until
then grows with the day (62 bytes a row: 1.9 GB at 30M trades), so each parsed piece's rows go
to an Arrow IPC file, sorted by symbol (stably: (file, line) order stays inside a symbol), with
its row count per symbol kept in memory. A range is then the matching slice of every piece's
file, memory-mapped for that range only: memory stays about one piece plus one range, however
long the day.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from pyarrow import ipc


class SymbolSpill:
    def __init__(self, key: str = "sym_key") -> None:
        self.key = key
        self.rows = 0
        self._dir: Path | None = None
        self._pieces: list[tuple[Path, np.ndarray, np.ndarray]] = []  # path, keys, rows before each

    def add(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="raw-ticks-spill-"))
        frame = frame.sort(self.key, maintain_order=True)
        path = self._dir / f"{len(self._pieces):06d}.arrow"
        table = frame.to_arrow()
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
        counts = frame.group_by(self.key).len().sort(self.key)
        before = np.concatenate(([0], np.cumsum(counts["len"].to_numpy())))
        self._pieces.append((path, counts[self.key].to_numpy(), before))
        self.rows += frame.height

    def counts(self) -> pl.DataFrame:
        """Rows per key over every piece, in key order."""
        parts = [pl.DataFrame({self.key: keys, "len": np.diff(before)}) for _, keys, before in self._pieces]
        return pl.concat(parts).group_by(self.key).agg(pl.col("len").sum()).sort(self.key)

    def ranges(self, starts: list[int]) -> Iterator[pl.DataFrame]:
        """The rows of keys in [starts[i], starts[i + 1]) for each i (the last range open-ended),
        pieces in the order they were added."""
        bounds = [*starts[1:], None]
        for low, high in zip(starts, bounds, strict=True):
            parts = []
            for path, keys, before in self._pieces:
                first = before[np.searchsorted(keys, low, side="left")]
                last = before[np.searchsorted(keys, high, side="left")] if high is not None else before[-1]
                if last > first:
                    with pa.memory_map(str(path)) as source:
                        table = ipc.open_file(source).read_all().slice(int(first), int(last - first))
                        parts.append(pl.from_arrow(table).rechunk())  # a copy: the map closes here
            if parts:
                yield pl.concat(parts)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._pieces = []

    def __del__(self) -> None:
        self.close()
