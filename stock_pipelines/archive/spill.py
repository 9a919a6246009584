"""A day's compact valid rows on local disk, read back one bounded range at a time.

raw_ticks must be sorted by (symbol, cum) over the whole day, but which rows make a range of
about a million is known only once every file is parsed. Holding the day's rows in memory until
then grows with the day (62 bytes a row: 1.9 GB at 30M trades), so the parsed rows go, a few
pieces at a time (`add`), to Arrow IPC files, each sorted by (symbol, cum) (stably: (file, line)
order stays inside a tie), with its row count per symbol kept in memory. A range is then the
matching slice of every file, memory-mapped for that range only: memory stays about one added
frame plus one range, however long the day.

A range starts at a (symbol, cum) key: one symbol can hold a quarter of a day's trades, so a
large symbol is cut between two cum values (`split_points`). Rows sharing a (symbol, cum), the
ones deduplication compares, never straddle a cut.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from pyarrow import ipc

SAMPLES_PER_RANGE = 1024  # cum values sampled per wanted range when a symbol is cut


@dataclass(frozen=True)
class RangeStart:
    """The first key of a range: a symbol, and a cum inside it (None: the symbol's first row)."""

    key: int
    cum: int | None = None


@dataclass
class _Piece:
    path: Path
    keys: np.ndarray  # the piece's distinct symbol keys, ascending
    before: np.ndarray  # rows before each of them (and the piece's row count last)


class SymbolSpill:
    def __init__(self, key: str = "sym_key", order: str = "cum") -> None:
        self.key = key
        self.order = order
        self.rows = 0
        self._dir: Path | None = None
        self._pieces: list[_Piece] = []

    def add(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="raw-ticks-spill-"))
        frame = _sorted(frame, self.key, self.order)
        path = self._dir / f"{len(self._pieces):06d}.arrow"
        table = frame.to_arrow().combine_chunks()  # one record batch: a column maps as one array
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
        counts = frame.group_by(self.key).len().sort(self.key)
        before = np.concatenate(([0], np.cumsum(counts["len"].to_numpy(), dtype=np.int64)))
        self._pieces.append(_Piece(path, counts[self.key].to_numpy(), before))
        self.rows += frame.height

    def counts(self) -> pl.DataFrame:
        """Rows per key over every piece, in key order."""
        parts = [pl.DataFrame({self.key: p.keys, "len": np.diff(p.before)}) for p in self._pieces]
        return pl.concat(parts).group_by(self.key).agg(pl.col("len").sum()).sort(self.key)

    def split_points(self, key: int, rows: int, parts: int) -> list[int]:
        """About `parts - 1` ascending cum values cutting key's `rows` rows into `parts` ranges of
        about equal size (estimated from every piece's cum column, sampled; fewer cuts where
        one cum holds many rows)."""
        if parts <= 1:
            return []
        stride = max(1, rows // (parts * SAMPLES_PER_RANGE))
        samples = []
        for piece in self._pieces:
            with self._column(piece) as cum:
                first, last = self._symbol_rows(piece, key)
                samples.append(np.array(cum[first:last:stride]))
        ordered = np.sort(np.concatenate(samples))
        if not len(ordered):
            return []
        picks = ordered[(np.arange(1, parts) * len(ordered)) // parts]
        return [int(v) for v in np.unique(picks) if v > ordered[0]]

    def ranges(self, starts: list[RangeStart]) -> Iterator[pl.DataFrame]:
        """The rows from each start up to the next (the last range open-ended), pieces in the
        order they were added."""
        bounds = [*starts[1:], None]
        for low, high in zip(starts, bounds, strict=True):
            parts = []
            for piece in self._pieces:
                first = self._position(piece, low)
                last = self._position(piece, high) if high is not None else int(piece.before[-1])
                if last > first:
                    with pa.memory_map(str(piece.path)) as source:
                        table = ipc.open_file(source).read_all().slice(first, last - first)
                        parts.append(pl.from_arrow(table).rechunk())  # a copy: the map closes here
            if parts:
                yield pl.concat(parts)

    def _symbol_rows(self, piece: _Piece, key: int) -> tuple[int, int]:
        index = int(np.searchsorted(piece.keys, key, side="left"))
        if index < len(piece.keys) and piece.keys[index] == key:
            return int(piece.before[index]), int(piece.before[index + 1])
        return int(piece.before[index]), int(piece.before[index])

    def _position(self, piece: _Piece, start: RangeStart) -> int:
        """Rows of the piece before `start`."""
        first, last = self._symbol_rows(piece, start.key)
        if start.cum is None or first == last:
            return first
        with self._column(piece) as cum:
            return first + int(np.searchsorted(cum[first:last], start.cum, side="left"))

    def _column(self, piece: _Piece) -> _MappedColumn:
        return _MappedColumn(piece.path, self.order)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._pieces = []

    def __del__(self) -> None:
        self.close()


def _sorted(frame: pl.DataFrame, key: str, order: str) -> pl.DataFrame:
    """`frame.sort(key, order, maintain_order=True)`; through one packed UInt64 column (a third
    of the time of a two-column sort) when both fit in 32 bits, as keys and cums of a day do."""
    low, high = frame.select(pl.col(order).min().alias("low"), pl.col(order).max().alias("high")).row(0)
    if low < 0 or high >= 1 << 32:
        return frame.sort(key, order, maintain_order=True)
    packed = pl.col(key).cast(pl.UInt64) * (1 << 32) + pl.col(order).cast(pl.UInt64)
    return frame.sort(packed, maintain_order=True)


class _MappedColumn:
    """One column of a spill file as a read-only numpy view of the memory map (no copy)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name

    def __enter__(self) -> np.ndarray:
        self._map = pa.memory_map(str(self.path))
        column = ipc.open_file(self._map).read_all().column(self.name)
        self._array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        return self._array.to_numpy(zero_copy_only=False)

    def __exit__(self, *exc: object) -> None:
        del self._array
        self._map.close()
