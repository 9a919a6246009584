"""A day of archive files -> raw_ticks (validated, deduplicated) + quarantine, loss-free.

Rules, applied to every parsed line; the first that fails is the quarantine reason:
  unknown_version, missing_field, bad_source, bad_symbol ([0-9A-Z]{6}), nonpositive_price,
  nonpositive_qty, bad_cum (cum < qty), out_of_session / in_closing_auction (ts must lie in
  [open - tol, closing auction start) or be the closing print in [close - tol, close + tol]),
  decreasing_cum (within one symbol and source, ordered by cum, ts must not go back: the row
  whose time is earlier than a trade with a smaller cum is the one blamed).
Then duplicates by (symbol, cum) are dropped, keeping kis before kiwoom, then the earliest rx,
then the first (file, line). `lines_in == rows_kept + duplicates + quarantined` is asserted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from stock_pipelines.archive import reader
from stock_pipelines.archive.layout import day_torn_tail_files, day_trade_files
from stock_pipelines.archive.read_ahead import read_ahead
from stock_pipelines.archive.record import SCHEMA_VERSION, SOURCES
from stock_pipelines.archive.spill import RangeStart, SymbolSpill
from stock_pipelines.archive.symbol_range import COMPACT, dedupe, drop_decreasing, order
from stock_pipelines.market import Session

UNKNOWN_VERSION = "unknown_version"
MISSING_FIELD = "missing_field"
BAD_SOURCE = "bad_source"
BAD_SYMBOL = "bad_symbol"
NONPOSITIVE_PRICE = "nonpositive_price"
NONPOSITIVE_QTY = "nonpositive_qty"
BAD_CUM = "bad_cum"
OUT_OF_SESSION = "out_of_session"
IN_CLOSING_AUCTION = "in_closing_auction"

DEFAULT_TOLERANCE = timedelta(seconds=5)
UTC_US = pl.Datetime("us", "UTC")
TICKS_SCHEMA = {
    "source": pl.String,
    "symbol": pl.String,
    "ts": UTC_US,
    "rx": UTC_US,
    "price": pl.Int64,
    "qty": pl.Int64,
    "cum": pl.Int64,
    "seq": pl.Int64,
    "collector": pl.String,
    "file": pl.String,
    "line": pl.Int64,
}
QUARANTINE_SCHEMA = {
    "file": pl.String,
    "line": pl.Int64,
    "reason": pl.String,
    "raw": pl.String,  # the line's first reader.RAW_EXCERPT_BYTES, decoded with backslash escapes
    "collector": pl.String,
    "offset": pl.Int64,  # where the whole line is: byte offset and length in `file`
    "length": pl.Int64,
}
_SYMBOL_REGEX = r"^[0-9A-Z]{6}$"


@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    label: str  # path relative to its archive root (prefixed for a fallback root)
    collector: str


@dataclass
class IngestStats:
    files: int = 0
    bytes: int = 0
    lines_in: int = 0
    rows_kept: int = 0
    duplicates: int = 0
    duplicates_same_source: int = 0
    duplicates_cross_source: int = 0
    duplicate_conflicts: int = 0  # duplicates whose price or qty differ from the kept row
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    def check_accounting(self) -> None:
        total = self.rows_kept + self.duplicates + self.quarantined
        if total != self.lines_in:
            raise AssertionError(
                f"line accounting broken: {self.lines_in} lines in != {self.rows_kept} kept + "
                f"{self.duplicates} duplicates + {self.quarantined} quarantined"
            )


@dataclass
class IngestResult:
    ticks: pl.DataFrame
    quarantine: pl.DataFrame
    stats: IngestStats


def day_files(roots: list[tuple[Path, str]], day: date) -> list[ArchiveFile]:
    """Trade files and writer-quarantined torn tails of `day` under each (root, label prefix)."""
    files = []
    for root, prefix in roots:
        for path in [*day_trade_files(root, day), *day_torn_tail_files(root, day)]:
            relative = path.relative_to(root)
            files.append(ArchiveFile(path, prefix + relative.as_posix(), relative.parts[0]))
    return sorted(files, key=lambda f: f.label)


def ingest_day(
    roots: list[tuple[Path, str]], day: date, session: Session, tolerance: timedelta = DEFAULT_TOLERANCE
) -> IngestResult:
    return ingest_files(day_files(roots, day), session, tolerance)


def ingest_files(
    files: list[ArchiveFile], session: Session, tolerance: timedelta = DEFAULT_TOLERANCE
) -> IngestResult:
    """The whole day in memory (tests, small days); the asset streams with `DayIngest`."""
    run = DayIngest(files, session, tolerance)
    batches = list(run.batches())
    ticks = pl.concat(batches) if batches else pl.DataFrame(schema=TICKS_SCHEMA)
    assert run.quarantine is not None
    return IngestResult(ticks, run.quarantine, run.stats)


class DayIngest:
    """A day's files -> raw_ticks batches in final order, then quarantine and stats.

    Construction parses and validates every file piece by piece, spilling valid rows in a
    compact form (62 bytes a row) to local disk (`spill.SymbolSpill`), a file for each
    `spill_rows` or so. `batches()` then reads back, sorts, checks and deduplicates one range of
    rows at a time and yields raw_ticks rows in their final order, so memory holds about one
    piece, `spill_rows` compact rows and one range whatever the size of the day; after the
    last batch it builds `quarantine`, fills `stats` and asserts the line accounting (inside
    the generator: a lake writer consuming it never commits a partition whose accounting
    failed).
    """

    def __init__(
        self,
        files: list[ArchiveFile],
        session: Session,
        tolerance: timedelta = DEFAULT_TOLERANCE,
        target_batch_rows: int = 1_000_000,
        spill_rows: int = 2_000_000,
    ) -> None:
        self.files = sorted(files, key=lambda f: f.label)  # file_id order == label order
        self.stats = IngestStats(files=len(self.files))
        self.quarantine: pl.DataFrame | None = None
        self._bounds = _Bounds(session, tolerance)
        self._target = target_batch_rows
        self._rejected: list[pl.DataFrame] = []  # file_id, line, reason: raw fetched at the end
        self._quarantine_rows: list[dict] = []
        self._spill = SymbolSpill()  # valid rows, on disk until their range is processed
        # spill files of about `spill_rows`: a range is a slice of every file, and one of many
        # slices peaks far higher (30M day: 1.5 GiB in 64 files, 1.0 in 15; docs/archive-format)
        pending: list[pl.DataFrame] = []
        pending_rows = 0
        symbols: list[pl.DataFrame] = []  # sym_key -> symbol text, to rebuild the column per batch
        for file_id, parsed in _parsed(self.files):
            archive_file = self.files[file_id]
            self.stats.lines_in += parsed.lines
            self.stats.bytes += parsed.size
            for reject in parsed.rejects:
                self._quarantine_rows.append(_quarantine_row(archive_file, reject))
            if parsed.rows.height:
                good = self._validate(parsed.rows, file_id, parsed.proven)
                # sym_key is sym read in base 36: one text per key, so any row's text will do
                symbols.append(good.group_by("sym_key").agg(pl.col("sym").first()))
                pending.append(good.select(COMPACT))
                pending_rows += pending[-1].height
                if pending_rows >= spill_rows:
                    self._spill.add(pl.concat(pending))
                    pending, pending_rows = [], 0
            del parsed
        if pending:
            self._spill.add(pl.concat(pending))
        self._symbols = (
            pl.concat(symbols).group_by("sym_key").agg(pl.col("sym").first()).sort("sym_key")
            if symbols
            else pl.DataFrame(schema={"sym_key": pl.UInt32, "sym": pl.String})
        )

    def _validate(self, rows: pl.DataFrame, file_id: int, proven: bool = False) -> pl.DataFrame:
        """A piece's rows that pass every rule, with their symbol's key; the rest are noted
        as rejected (file_id, line, reason). `proven`: the reader's fast path already proved
        the rules on fields and strings (see `reader.ParsedFile`)."""
        reason = self._bounds.reason_expr(strings_proven=proven)
        checked = rows.with_columns(reason=reason, file_id=pl.lit(file_id, pl.UInt32))
        rejected = checked.filter(pl.col("reason").is_not_null())
        self._rejected.append(rejected.select("file_id", "line", "reason"))
        return checked.filter(pl.col("reason").is_null()).with_columns(
            sym_key=pl.col("sym").str.to_integer(base=36, dtype=pl.UInt32)
        )

    def _buckets(self):
        """Valid rows in (symbol, cum) order, in ranges of about `target_batch_rows` rows read
        back from the spill one at a time: whole symbols, and a symbol larger than a range cut
        between two cum values."""
        spill = self._spill
        if spill.rows == 0:
            return
        starts: list[RangeStart] = []
        filled = self._target  # rows in the open range: the first symbol opens one
        for key, rows in spill.counts().iter_rows():
            if rows > self._target:
                cuts = spill.split_points(key, rows, -(-rows // self._target))
                starts += [RangeStart(key), *(RangeStart(key, cum) for cum in cuts)]
                filled = self._target  # the next symbol opens a range
                continue
            if filled + rows > self._target:
                starts.append(RangeStart(key))
                filled = 0
            filled += rows
        yield from spill.ranges(starts)

    def batches(self):
        try:
            yield from self._ranges()
        finally:
            self._spill.close()  # done, failed or abandoned: the spill files go
        self._close()

    def _ranges(self):
        carry = None  # the decreasing_cum rule's state at the end of the previous range
        for rows in self._buckets():
            bucket = order(rows, self._bounds.base)
            del rows
            bucket, decreasing, carry = drop_decreasing(bucket, self._bounds.base, carry)
            self._rejected.append(decreasing)
            ticks, (dups, same, cross, conflicts) = dedupe(bucket)
            del bucket
            self.stats.duplicates += dups
            self.stats.duplicates_same_source += same
            self.stats.duplicates_cross_source += cross
            self.stats.duplicate_conflicts += conflicts
            if ticks.height:
                out = _finish(ticks, self.files, self._symbols)
                self.stats.rows_kept += out.height
                yield out

    def _close(self) -> None:
        rows = self._quarantine_rows
        rejected = pl.concat(self._rejected) if self._rejected else None
        if rejected is not None and rejected.height:
            for (file_id,), group in rejected.group_by("file_id", maintain_order=True):
                archive_file = self.files[int(file_id)]
                spans = reader.line_spans(archive_file.path, group["line"].to_list())
                for line, reason in group.select("line", "reason").iter_rows():
                    offset, raw = spans[line]  # a parsed line: <= MAX_LINE_BYTES
                    reject = reader.Reject(line, reason, reader.excerpt(raw), offset, len(raw))
                    rows.append(_quarantine_row(archive_file, reject))
        self.quarantine = (
            pl.DataFrame(rows, schema=QUARANTINE_SCHEMA, orient="row").sort("file", "line", "reason")
            if rows
            else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
        self.stats.quarantined = self.quarantine.height
        self.stats.quarantined_by_reason = dict(sorted(Counter(self.quarantine["reason"].to_list()).items()))
        self.stats.check_accounting()


class _Bounds:
    def __init__(self, session: Session, tolerance: timedelta) -> None:
        def us(moment) -> int:
            return int(moment.timestamp()) * 1_000_000 + moment.microsecond

        tol = int(tolerance.total_seconds() * 1_000_000)
        self.start = us(session.open) - tol
        self.auction = us(session.closing_auction_start)
        self.close_print_start = us(session.close) - tol
        self.end = us(session.close) + tol
        self.base = us(session.pre_open_start) - tol

    def in_session(self) -> pl.Expr:
        ts = pl.col("ts")
        continuous = (ts >= self.start) & (ts < self.auction)
        closing_print = (ts >= self.close_print_start) & (ts <= self.end)
        return continuous | closing_print

    def reason_expr(self, strings_proven: bool = False) -> pl.Expr:
        """The first rule a row breaks, or null. `strings_proven`: every field is present, `src`
        known and `sym` valid (the fast path's row check), so those three rules, which cannot
        fire, are not evaluated again (the symbol regex is the costliest rule)."""
        c = pl.col
        fields = ("src", "sym", "ts", "rx", "px", "qty", "cum", "seq")
        ts = c("ts")
        rules = pl.when(c("v").is_null() | (c("v") != SCHEMA_VERSION)).then(pl.lit(UNKNOWN_VERSION))
        if not strings_proven:
            rules = (
                rules.when(pl.any_horizontal(c(name).is_null() for name in fields))
                .then(pl.lit(MISSING_FIELD))
                .when(~c("src").is_in(list(SOURCES)))
                .then(pl.lit(BAD_SOURCE))
                .when(~c("sym").str.contains(_SYMBOL_REGEX))
                .then(pl.lit(BAD_SYMBOL))
            )
        return (
            rules.when(c("px") <= 0)
            .then(pl.lit(NONPOSITIVE_PRICE))
            .when(c("qty") <= 0)
            .then(pl.lit(NONPOSITIVE_QTY))
            .when(c("cum") < c("qty"))
            .then(pl.lit(BAD_CUM))
            .when((ts >= self.auction) & (ts < self.close_print_start))
            .then(pl.lit(IN_CLOSING_AUCTION))
            .when(~self.in_session())
            .then(pl.lit(OUT_OF_SESSION))
            .otherwise(pl.lit(None, pl.String))
        )


def in_session_expr(session: Session, tolerance: timedelta = DEFAULT_TOLERANCE) -> pl.Expr:
    """True where column `ts` (epoch microseconds) is a trade time the session allows."""
    return _Bounds(session, tolerance).in_session()


def _finish(ticks: pl.DataFrame, files: list[ArchiveFile], symbol_map: pl.DataFrame) -> pl.DataFrame:
    if ticks.height == 0:
        return pl.DataFrame(schema=TICKS_SCHEMA)
    labels = pl.Series([f.label for f in files], dtype=pl.String)
    collectors = pl.Series([f.collector for f in files], dtype=pl.String)
    return ticks.select(
        source=pl.when(pl.col("src_rank") == 0).then(pl.lit(SOURCES[0])).otherwise(pl.lit(SOURCES[1])),
        symbol=pl.col("sym_key").replace_strict(
            symbol_map["sym_key"], symbol_map["sym"], return_dtype=pl.String
        ),
        ts=pl.col("ts").cast(UTC_US),
        rx=pl.col("rx").cast(UTC_US),
        price=pl.col("px"),
        qty=pl.col("qty"),
        cum=pl.col("cum"),
        seq=pl.col("seq"),
        collector=pl.col("file_id").map_batches(lambda s: collectors.gather(s), return_dtype=pl.String),
        file=pl.col("file_id").map_batches(lambda s: labels.gather(s), return_dtype=pl.String),
        line=pl.col("line").cast(pl.Int64),
    )


def _parsed(files: list[ArchiveFile]) -> Iterator[tuple[int, reader.ParsedFile]]:
    """(file index, parsed piece) for every piece of every file, in order. The next piece is
    read and counted in a helper thread while this one is parsed (disk and byte counts overlap
    the parser), and at most those two pieces are in memory."""

    def pieces():
        for file_id, archive_file in enumerate(files):
            if _is_torn_tail(archive_file):
                yield file_id, None
            else:
                for piece in reader.load(archive_file.path):
                    yield file_id, piece

    for file_id, group in groupby(read_ahead(pieces()), key=lambda item: item[0]):
        if _is_torn_tail(files[file_id]):
            yield file_id, _torn_tail(files[file_id].path)
            continue
        for parsed in reader.numbered(piece for _, piece in group):
            yield file_id, parsed


def _is_torn_tail(archive_file: ArchiveFile) -> bool:
    return archive_file.path.name.endswith(".torn")


def _torn_tail(path: Path) -> reader.ParsedFile:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raw = f"{type(error).__name__}: {error}".encode()
        return reader.ParsedFile(reader.empty_rows(), [reader.Reject(0, reader.UNREADABLE_FILE, raw)], 1)
    tail = reader.reject(1, reader.TORN_TAIL, raw, 0, len(raw))
    return reader.ParsedFile(reader.empty_rows(), [tail], 1, len(raw))


def _quarantine_row(archive_file: ArchiveFile, reject: reader.Reject) -> dict:
    return {
        "file": archive_file.label,
        "line": reject.line,
        "reason": reject.reason,
        "raw": reject.raw.decode("utf-8", errors="backslashreplace"),
        "collector": archive_file.collector,
        "offset": reject.offset,
        "length": reject.length,
    }


def quarantined_line(roots: list[tuple[Path, str]], file: str, offset: int, length: int) -> bytes:
    """A raw_ticks_quarantine row's whole line, read back from the archive: `roots` as for
    `ingest_day` ((root, label prefix) pairs), `file`, `offset` and `length` from the row."""
    for root, prefix in sorted(roots, key=lambda pair: len(pair[1]), reverse=True):
        if file.startswith(prefix):
            return reader.read_span(root / file[len(prefix) :], offset, length)
    raise ValueError(f"{file!r} is under none of the archive roots {[str(root) for root, _ in roots]}")
