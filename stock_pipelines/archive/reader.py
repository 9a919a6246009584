"""Read archive files into columns without losing a line.

Every line of every file ends up in exactly one of two places: a parsed row (with its file,
line number and byte offset, so its raw text can be fetched again) or a reject (file, line,
reason, byte offset and length, and an excerpt of at most `RAW_EXCERPT_BYTES`: a 5 MB garbage
line is not copied around; `read_span` reads it back whole). Validation of the parsed rows
happens later (`ticks.py`).

Speed: a file is cut into blocks of whole lines (`fast_parse.BLOCK_BYTES`), each parsed by
polars' NDJSON reader (faster than pyarrow's, more lenient) once a cheap detector (`fast_parse`)
proves it has none of the lines polars gets wrong; any other block goes through the strict
reader: one multi-threaded `pyarrow.json` parse, then chunks, then a failing chunk line by line
in Python. Both paths give the same rows and rejects (stock_pipelines_tests/archive/test_fast_parse.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from stock_pipelines.archive import fast_parse

# reasons a line is rejected before validation
EMPTY_LINE = "empty_line"
LINE_TOO_LONG = "line_too_long"
UNTERMINATED_LINE = "unterminated_line"
NON_UTF8 = "non_utf8"
INVALID_JSON = "invalid_json"
NOT_OBJECT = "not_object"
DUPLICATE_KEY = "duplicate_key"
WRONG_TYPE = "wrong_type"
NUMBER_OUT_OF_RANGE = "number_out_of_range"
UNREADABLE_FILE = "unreadable_file"
TORN_TAIL = "torn_tail"

MAX_LINE_BYTES = 64 * 1024  # a trade line is ~130 bytes; anything this long is not a record
CHUNK_LINES = 4096
BLOCK_SIZE = 1024 * 1024  # pyarrow block; must exceed MAX_LINE_BYTES
READ_BYTES = 64 * 1024 * 1024  # a piece of a file: four fast-path blocks
RAW_EXCERPT_BYTES = 1024  # what a reject keeps of its line; offset and length point at the rest

INT_FIELDS = ("v", "ts", "rx", "px", "qty", "cum", "seq")
STR_FIELDS = ("src", "sym")
ARROW_SCHEMA = pa.schema(
    [
        (name, pa.string()) if name in STR_FIELDS else (name, pa.int64())
        for name in ("v", "src", "sym", "ts", "rx", "px", "qty", "cum", "seq")
    ]
)
POLARS_SCHEMA = {name: (pl.String if name in STR_FIELDS else pl.Int64) for name in ARROW_SCHEMA.names}
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=ARROW_SCHEMA, unexpected_field_behavior="ignore")
_READ_OPTIONS = pj.ReadOptions(block_size=BLOCK_SIZE, use_threads=True)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass
class Reject:
    line: int  # 1-based; 0 for a whole-file problem
    reason: str
    raw: bytes  # the line's first RAW_EXCERPT_BYTES (for unreadable_file: the error)
    offset: int = 0  # byte offset of the line in its file
    length: int = 0  # the line's length in bytes, without its newline


def reject(line: int, reason: str, data: bytes, offset: int, length: int) -> Reject:
    """A reject for data[offset:offset + length], keeping only its excerpt."""
    return Reject(line, reason, bytes(data[offset : offset + min(length, RAW_EXCERPT_BYTES)]), offset, length)


def excerpt(raw: bytes) -> bytes:
    return bytes(raw[:RAW_EXCERPT_BYTES])


@dataclass
class ParsedFile:
    """One file's lines: `rows` (POLARS_SCHEMA + line) and `rejects`; lines = both. `proven`:
    every row passed the fast path's row check (all nine fields, a known src, a valid sym)."""

    rows: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    lines: int = 0
    size: int = 0
    proven: bool = False


def empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema={**POLARS_SCHEMA, "line": pl.Int64})


@dataclass
class LoadedFile:
    """A piece of a file (whole lines, about READ_BYTES) and the fast path's byte counts, or
    why the file could not be read; pieces are loaded in a helper thread ahead of the parser."""

    data: bytes = b""
    error: Reject | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)
    counts: list[tuple[int, int, int]] = field(default_factory=list)
    offset: int = 0  # where `data` starts in its file
    first_line: int = 1  # the number of its first line in its file (`numbered` sets it)


def load(path: Path) -> Iterator[LoadedFile]:
    """A file in pieces of whole lines of about READ_BYTES (only the last may end mid-line): a
    day is never held whole, only the piece being parsed and the one read ahead. A piece's
    first line number is known once the pieces before it are parsed (`numbered`)."""
    offset, carry = 0, b""
    try:
        with path.open("rb") as handle:
            while True:
                chunk = handle.read(READ_BYTES)
                data = carry + chunk if carry else chunk
                cut = len(data) if not chunk else data.rfind(b"\n") + 1
                if cut == 0 and chunk:  # no newline yet: a line longer than READ_BYTES, read on
                    carry = data
                    continue
                if data:
                    yield loaded_bytes(data[:cut] if cut < len(data) else data, offset)
                    offset += cut
                if not chunk:
                    return
                carry = data[cut:]
    except OSError as error:
        yield LoadedFile(error=Reject(0, UNREADABLE_FILE, f"{type(error).__name__}: {error}".encode()))


def loaded_bytes(data: bytes, offset: int = 0) -> LoadedFile:
    spans = fast_parse.blocks(data, data.rfind(b"\n") + 1)
    return LoadedFile(data, None, spans, fast_parse.block_counts(data, spans), offset)


def numbered(pieces: Iterator[LoadedFile]) -> Iterator[ParsedFile]:
    """One file's pieces parsed in order, each numbering its lines after the previous ones."""
    first_line = 1
    for piece in pieces:
        piece.first_line = first_line
        parsed = parse_loaded(piece)
        first_line += parsed.lines
        yield parsed


def parse_file(path: Path) -> ParsedFile:
    return merge(list(numbered(load(path))))


def parse_bytes(data: bytes, fast: bool = True) -> ParsedFile:
    """Every line of `data`; `fast=False` sends every block through the strict reader."""
    return parse_loaded(loaded_bytes(data), fast)


def merge(pieces: list[ParsedFile]) -> ParsedFile:
    if not pieces:
        return ParsedFile(empty_rows())
    rows = pl.concat([p.rows for p in pieces], how="vertical")
    rejects = [r for p in pieces for r in p.rejects]
    lines, size = sum(p.lines for p in pieces), sum(p.size for p in pieces)
    return ParsedFile(rows, rejects, lines, size, all(p.proven or not p.rows.height for p in pieces))


def parse_loaded(loaded: LoadedFile, fast: bool = True) -> ParsedFile:
    """One piece's rows and rejects, with its file's line numbers and byte offsets."""
    if loaded.error is not None:
        return ParsedFile(empty_rows(), [loaded.error], 1)
    data, spans, counts = loaded.data, loaded.spans, loaded.counts
    size = len(data)
    complete_end = spans[-1][1] if spans else 0
    rejects: list[Reject] = []
    frames: list[pl.DataFrame] = []
    proven: list[int] = []  # rows of each frame the fast path proved
    first_line = loaded.first_line
    # runs of consecutive blocks whose counts pass are parsed by polars in one call
    run: list[int] = []
    for index in range(len(spans) + 1):
        passes = fast and index < len(spans) and fast_parse.counts_may_pass(counts[index])
        if passes:
            run.append(index)
            continue
        if run:
            first_line = _fast_run(data, spans, counts, run, first_line, frames, rejects, proven)
            run = []
        if index < len(spans):
            first_line = _strict_block(data, spans[index], first_line, frames, rejects)
    if complete_end < size:  # bytes after the last newline: a line the writer never finished
        rejects.append(reject(first_line, UNTERMINATED_LINE, data, complete_end, size - complete_end))
        first_line += 1
    for item in rejects:
        item.offset += loaded.offset
    rows = pl.concat(frames, how="vertical") if frames else empty_rows()
    rejects.sort(key=lambda r: r.line)
    return ParsedFile(rows, rejects, first_line - loaded.first_line, size, sum(proven) == rows.height)


def _fast_run(data, spans, counts, run, first_line, frames, rejects, proven) -> int:
    """Blocks spans[run] (contiguous, counts passed): polars parses them, in one call if the
    row check passes for the whole run, else block by block; a failing block goes strict."""
    begin, end = spans[run[0]][0], spans[run[-1]][1]
    lines = sum(counts[i][0] for i in run)  # bytes <= 0x20: the line count once the rows pass
    whole = data if (begin, end) == (0, len(data)) else memoryview(data)[begin:end]
    frame = fast_parse.parse(whole, POLARS_SCHEMA)
    if frame is not None and fast_parse.rows_pass(frame, lines):
        frames.append(frame.with_columns(line=pl.int_range(first_line, first_line + lines, dtype=pl.Int64)))
        proven.append(lines)
        return first_line + lines
    for index in run:
        lines = counts[index][0]
        span = spans[index]
        frame = fast_parse.parse(memoryview(data)[span[0] : span[1]], POLARS_SCHEMA) if len(run) > 1 else None
        if frame is not None and fast_parse.rows_pass(frame, lines):
            frames.append(
                frame.with_columns(line=pl.int_range(first_line, first_line + lines, dtype=pl.Int64))
            )
            proven.append(lines)
            first_line += lines
        else:
            first_line = _strict_block(data, span, first_line, frames, rejects)
    return first_line


def _strict_block(data, span, first_line, frames, rejects) -> int:
    """One block through the strict reader, its line numbers and offsets made the file's."""
    begin, end = span
    parsed = _strict_bytes(data[begin:end])
    for item in parsed.rejects:
        item.line += first_line - 1
        item.offset += begin
    rejects.extend(parsed.rejects)
    if parsed.rows.height:
        frames.append(parsed.rows.with_columns(pl.col("line") + (first_line - 1)))
    return first_line + parsed.lines


def _strict_bytes(data: bytes) -> ParsedFile:
    size = len(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == 10)  # index of each line's "\n"
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    rejects: list[Reject] = []
    complete_end = int(ends[-1]) + 1 if len(ends) else 0
    if complete_end < size:  # bytes after the last newline: a line the writer never finished
        rejects.append(reject(len(ends) + 1, UNTERMINATED_LINE, data, complete_end, size - complete_end))

    excluded = (lengths == 0) | (lengths > MAX_LINE_BYTES)
    for index in np.flatnonzero(excluded):
        reason = EMPTY_LINE if lengths[index] == 0 else LINE_TOO_LONG
        rejects.append(reject(int(index) + 1, reason, data, int(starts[index]), int(lengths[index])))

    frames: list[pl.DataFrame] = []
    arrow_data = pa.py_buffer(data)
    # pyarrow.json reads a line `null` as a row of nulls, and a file of one such line crashes
    # it: a line that does not start as an object is judged by the Python parser alone
    first_bytes = buffer[np.minimum(starts, max(size - 1, 0))] if size else np.empty(0, np.uint8)
    odd = ~excluded & (first_bytes != ord("{"))
    if odd.any():
        frames.append(_parse_lines(data, np.flatnonzero(odd), starts, ends, rejects))
        excluded |= odd
    candidates = np.flatnonzero(~excluded)
    if len(candidates):
        # maximal runs of consecutive candidate lines: each run is one contiguous byte range
        breaks = np.flatnonzero(np.diff(candidates) != 1) + 1
        for run in np.split(candidates, breaks):
            frames.extend(_parse_run(arrow_data, data, run, starts, ends, rejects))
    rows = pl.concat(frames, how="vertical").sort("line") if frames else empty_rows()
    rejects.sort(key=lambda r: r.line)
    return ParsedFile(rows, rejects, len(ends) + (1 if complete_end < size else 0), size)


def _parse_run(arrow_data, data, run, starts, ends, rejects) -> list[pl.DataFrame]:
    whole = _try_vectorised(arrow_data, run, starts, ends)
    if whole is not None:
        return [whole]
    frames = []
    for begin in range(0, len(run), CHUNK_LINES):
        chunk = run[begin : begin + CHUNK_LINES]
        parsed = _try_vectorised(arrow_data, chunk, starts, ends)
        frames.append(parsed if parsed is not None else _parse_lines(data, chunk, starts, ends, rejects))
    return frames


def _try_vectorised(arrow_data, run, starts, ends) -> pl.DataFrame | None:
    first, last = int(run[0]), int(run[-1])
    begin, end = int(starts[first]), int(ends[last]) + 1
    piece = arrow_data.slice(begin, end - begin)
    if not _valid_utf8(piece):  # pyarrow.json does not check; polars requires valid UTF-8
        return None
    try:
        table = pj.read_json(pa.BufferReader(piece), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, ValueError):
        return None
    if table.num_rows != len(run):  # blank-looking lines skipped or two objects on a line
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(line=pl.Series(run + 1, dtype=pl.Int64))


def _valid_utf8(piece: pa.Buffer) -> bool:
    """UTF-8 check of a whole byte range without copying it (one large_string value over it)."""
    offsets = pa.py_buffer(np.array([0, piece.size], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, piece).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    """One line the strict way: (row, None) or (None, reason). Same verdicts as the fast path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, NON_UTF8
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey:
        return None, DUPLICATE_KEY
    except (ValueError, RecursionError):
        return None, INVALID_JSON
    if not isinstance(obj, dict):
        return None, NOT_OBJECT
    row: dict[str, object] = {}
    for name in INT_FIELDS:
        value = obj.get(name)
        if value is not None and type(value) is not int:  # bool and float are wrong too
            return None, WRONG_TYPE
        if value is not None and not _INT64_MIN <= value <= _INT64_MAX:
            return None, NUMBER_OUT_OF_RANGE
        row[name] = value
    for name in STR_FIELDS:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            return None, WRONG_TYPE
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
                return None, NON_UTF8
        row[name] = value
    return row, None


def _parse_lines(data, chunk, starts, ends, rejects) -> pl.DataFrame:
    rows, lines = [], []
    for index in chunk:
        raw = data[starts[index] : ends[index]]
        row, reason = parse_line(raw)
        if row is None:
            rejects.append(
                Reject(int(index) + 1, reason or INVALID_JSON, excerpt(raw), int(starts[index]), len(raw))
            )
            continue
        rows.append(row)
        lines.append(int(index) + 1)
    frame = (
        pl.DataFrame(rows, schema=POLARS_SCHEMA, orient="row") if rows else pl.DataFrame(schema=POLARS_SCHEMA)
    )
    return frame.with_columns(line=pl.Series(lines, dtype=pl.Int64))


def line_spans(path: Path, lines: list[int]) -> dict[int, tuple[int, bytes]]:
    """line number -> (byte offset, bytes without the newline) of parsed lines of `path`: rows
    keep only their line number, so a rejected row's text is found again here (rarely)."""
    data = path.read_bytes()
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    spans = {}
    for line in lines:
        start = int(ends[line - 2]) + 1 if line > 1 else 0
        spans[line] = (start, data[start : int(ends[line - 1])])
    return spans


def read_span(path: Path, offset: int, length: int) -> bytes:
    """`length` bytes at `offset`: a quarantined line read back whole from its archive file."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise ValueError(f"{path} has {len(data)} bytes at offset {offset}, not {length}: the file changed")
    return data
