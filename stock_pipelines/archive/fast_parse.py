"""The reader's fast path: polars' NDJSON parser, kept as strict as the strict reader.

polars' `read_ndjson` with an explicit schema parses about 1.5x faster than `pyarrow.json` and
on both cores, but it is more lenient than the archive contract in three ways we rely on
catching: it keeps the first of two duplicate keys, it turns a number, bool, object or array
given for a string field (`src`, `sym`) into text, and it decodes a lone surrogate escape
(`"\\ud800"`) to NUL. Everything else we found it errs on the strict side and raises: a string,
bool or float for an int field, an int outside int64, invalid UTF-8, control characters,
broken syntax, two objects on a line; a raised error sends the block to the strict reader.

So a block of whole lines (it ends with a newline) is taken from polars only when three byte
counts and a row check prove that none of the lenient cases is in it:

  * polars returns one row a line (it skips an empty or blank line and raises on two objects on
    one line), every row with all nine fields non-null, `src` in SOURCES and `sym` a
    6-character symbol;
  * bytes <= 0x20 (whitespace and controls) == rows: H rows come from H distinct lines, each
    ending in a newline, so the block has at least H newlines; as many bytes <= 0x20 as rows
    leaves room for no other whitespace or control byte and no line without a row. So there
    are exactly H lines (the line count comes from here, not from a count of its own), and
    with ints of at most 20 digits and short validated strings no line comes near
    MAX_LINE_BYTES;
  * colons == 9 x rows and double quotes == 22 x rows.

Why the counts suffice: nine non-null fields mean nine schema keys on every line, so at least
nine key colons a line; an average of exactly nine leaves no line room for a duplicate or an
extra key. The nine keys bring 18 quotes a line and each string value 2 more; an int field
cannot be a string (polars raises), so a line has 18, 20 or 22 and an average of 22 means `src`
and `sym` were JSON strings on every line, not coerced numbers. Validated `src` and `sym` values
hold no quote, colon or NUL, so the keys and those values are all the strings there are.
Before polars is asked, the same equalities with bytes <= 0x20 standing for the rows
(`counts_may_pass`) keep blocks that cannot pass away from it.

A block that fails any of it (a bad line is rare: a crash's torn line, a bug) goes whole
through the strict reader; only the clean blocks around it keep the fast path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from stock_pipelines.archive.record import SOURCES

BLOCK_BYTES = 16 * 1024 * 1024  # ~130k lines: the unit that falls back to the strict reader
KEYS = 9
COLONS_PER_LINE = KEYS
QUOTES_PER_LINE = 2 * KEYS + 2 * 2  # nine keys, two string values
_COLON, _QUOTE, _SPACE = ord(":"), ord('"'), ord(" ")
SYMBOL_REGEX = r"^[0-9A-Z]{6}$"
_POOL = ThreadPoolExecutor(2, thread_name_prefix="archive-count")  # numpy releases the GIL


def blocks(data: bytes, end: int) -> list[tuple[int, int]]:
    """[begin, end) ranges of whole lines of data[:end] (which ends with a newline), about
    BLOCK_BYTES each."""
    size = BLOCK_BYTES
    spans, begin = [], 0
    while begin < end:
        cut = data.find(b"\n", min(begin + size, end) - 1, end) if begin + size < end else end - 1
        spans.append((begin, cut + 1))
        begin = cut + 1
    return spans


_SLICE = 256 * 1024  # compared a cache-sized slice at a time: four passes over 16 MiB cost one


def _counts(data: bytes, span: tuple[int, int]) -> tuple[int, int, int]:
    """(bytes <= 0x20, colons, quotes) of a block, without copying it."""
    array = np.frombuffer(data, dtype=np.uint8, count=span[1] - span[0], offset=span[0])
    mask = np.empty(min(_SLICE, len(array)), dtype=bool)
    blanks = colons = quotes = 0
    for begin in range(0, len(array), _SLICE):
        part = array[begin : begin + _SLICE]
        hits = mask[: len(part)]
        blanks += int(np.count_nonzero(np.less_equal(part, _SPACE, out=hits)))
        colons += int(np.count_nonzero(np.equal(part, _COLON, out=hits)))
        quotes += int(np.count_nonzero(np.equal(part, _QUOTE, out=hits)))
    return blanks, colons, quotes


def block_counts(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """The detector's byte counts of every block, on both cores."""
    if len(spans) <= 1:
        return [_counts(data, span) for span in spans]
    return list(_POOL.map(lambda span: _counts(data, span), spans))


def counts_may_pass(counts: tuple[int, int, int]) -> bool:
    """Whether a block (or a run of them) can pass once polars has parsed it: its counts agree
    with as many lines as it has bytes <= 0x20."""
    blanks, colons, quotes = counts
    return colons == COLONS_PER_LINE * blanks and quotes == QUOTES_PER_LINE * blanks


def parse(source: bytes | memoryview, schema: dict) -> pl.DataFrame | None:
    """polars' parse of whole lines, or None where polars raises (the strict reader decides)."""
    try:
        return pl.read_ndjson(source if isinstance(source, bytes) else bytes(source), schema=schema)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError, ValueError):
        return None


def rows_pass(frame: pl.DataFrame, blanks: int) -> bool:
    """The row half of the proof: one row a line (as many rows as bytes <= 0x20), every field
    present, src and sym valid."""
    if frame.height != blanks:
        return False
    if any(frame.null_count().row(0)):
        return False
    c = pl.col
    ok = frame.select((c("src").is_in(list(SOURCES)) & c("sym").str.contains(SYMBOL_REGEX)).all()).item()
    return bool(ok)
