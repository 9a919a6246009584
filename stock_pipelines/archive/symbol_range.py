"""One range of raw_ticks rows: order, the decreasing_cum rule, deduplication.

`archive.ticks.DayIngest` keeps a day's valid rows in the compact form below and hands these
functions one range at a time, in (symbol, cum) order: whole symbols, or a part of a large one
cut between two cum values (`drop_decreasing` carries its state over the cut; rows sharing a
(symbol, cum) are never cut apart). `base_us` is the session's earliest allowed time (epoch
microseconds): times are packed relative to it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

DECREASING_CUM = "decreasing_cum"
_REL_TS_BITS = 40  # microseconds since the session's pre-open fit in 40 bits (12.7 days)


# what is kept of a valid row while the day is assembled (62 bytes a row)
COMPACT_SCHEMA = {
    "sym_key": pl.UInt32,  # base-36 value of the symbol (< 36**6 < 2**32): sorts like the text, faster
    "src_rank": pl.UInt8,  # 0 kis, 1 kiwoom: the dedupe preference
    "ts": pl.Int64,
    "rx": pl.Int64,
    "px": pl.Int64,
    "qty": pl.Int64,
    "cum": pl.Int64,
    "seq": pl.Int64,
    "file_id": pl.UInt32,
    "line": pl.UInt32,  # a file of more than 4e9 lines is not an archive hour
}
_CARRY_SCHEMA = {"sym_key": pl.UInt32, "src_rank": pl.UInt8, "ts": pl.Int64}
COMPACT = [
    pl.col("sym_key"),
    (pl.col("src") != "kis").cast(pl.UInt8).alias("src_rank"),
    *(pl.col(name) for name in ("ts", "rx", "px", "qty", "cum", "seq", "file_id")),
    pl.col("line").cast(pl.UInt32),
]


def order(valid: pl.DataFrame, base_us: int) -> pl.DataFrame:
    """Sort by (symbol, cum, preference); ties keep file order, i.e. (file, line).

    Rows arrive in (file, line) order and the sorts are stable, so a packed UInt64 key gives the
    same order as the six-column sort (symbol, cum, source rank, rx, file, line), much faster.
    Only rows sharing a (symbol, cum) need the preference: they are sorted again by it among
    themselves and put back in the places their group holds (few rows, unless two collectors
    archived the same trades, and then still one sort of those rows).
    """
    c = pl.col
    # preference inside a (symbol, cum) group: kis first, then the earliest receive time
    rx_rel = (c("rx") - base_us).clip(0, (1 << 62) - 1).cast(pl.UInt64)
    pref = c("src_rank").cast(pl.UInt64) * (1 << 62) + rx_rel
    if valid.height and valid["cum"].max() >= 1 << 32:  # a day's volume past 4.29e9: no packing
        return (
            valid.with_columns(_pref=pref).sort("sym_key", "cum", "_pref", maintain_order=True).drop("_pref")
        )
    key = c("sym_key").cast(pl.UInt64) * (1 << 32) + c("cum").cast(pl.UInt64)
    keyed = valid.with_columns(_key=key)
    # a range is a few runs already in key order (one per spill piece): numpy's stable sort of
    # 64-bit ints is a timsort, which merges such runs in about one pass where polars' stable
    # sort starts from scratch (a fifth of the sort's CPU on the benchmark's ranges)
    positions = np.argsort(keyed["_key"].to_numpy(), kind="stable")
    ordered = keyed[pl.Series(positions, dtype=pl.UInt64)] if len(positions) else keyed
    tied = ordered.select(
        ((c("_key") == c("_key").shift(1)) | (c("_key") == c("_key").shift(-1))).fill_null(False)
    ).to_series()
    if tied.any():
        places = tied.arg_true()
        regrouped = ordered.filter(tied).with_columns(_pref=pref).sort("_key", "_pref", maintain_order=True)
        ordered = pl.DataFrame([ordered[name].scatter(places, regrouped[name]) for name in ordered.columns])
    return ordered.drop("_key")


def drop_decreasing(
    valid: pl.DataFrame, base_us: int, carry: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Within one symbol and source, in cum order, a row whose ts is before an earlier row's.

    A symbol can continue from the previous range: `carry` (sym_key, src_rank, ts), the latest
    time per source of the previous range's last symbol, goes in front as the history the rule
    compares with. Returns the kept rows, the rejected ones, and this range's carry.
    """
    history = carry if carry is not None else pl.DataFrame(schema=_CARRY_SCHEMA)
    frame = pl.concat([history, valid.select(list(_CARRY_SCHEMA))])
    group = (pl.col("sym_key") != pl.col("sym_key").shift(1)).fill_null(True).cum_sum().cast(pl.Int64)
    # one monotone key per (symbol group, time): its running max resets itself at each new symbol
    key = group * (1 << _REL_TS_BITS) + (pl.col("ts") - base_us)
    # the key is numbered over all rows first: numbered inside each source's window, a symbol one
    # source never traded would shift that source's numbers and hide its later decreasing rows
    keyed = frame.select("src_rank", _key=key)
    bad = keyed.select(
        _bad=(pl.col("_key") < pl.col("_key").cum_max().shift(1).over("src_rank")).fill_null(False)
    ).to_series()
    last = frame["sym_key"][-1] if frame.height else None
    carry = (
        frame.filter(pl.col("sym_key") == last).group_by("src_rank").agg(pl.col("sym_key").first(), pl.col("ts").max()).sort("src_rank")
        .select(list(_CARRY_SCHEMA))
        if last is not None
        else None
    )
    bad = bad.slice(history.height)
    if not bad.any():
        return valid, pl.DataFrame(schema={"file_id": pl.UInt32, "line": pl.Int64, "reason": pl.String}), carry
    rejected = valid.filter(bad).select(
        "file_id", pl.col("line").cast(pl.Int64), reason=pl.lit(DECREASING_CUM)
    )
    return valid.filter(~bad), rejected, carry


def dedupe(valid: pl.DataFrame) -> tuple[pl.DataFrame, tuple[int, int, int, int]]:
    c = pl.col
    dup = ((c("sym_key") == c("sym_key").shift(1)) & (c("cum") == c("cum").shift(1))).fill_null(False)
    is_dup = valid.select(dup).to_series()
    dups = int(is_dup.sum())
    if not dups:
        return valid, (0, 0, 0, 0)
    kept_value = lambda name: pl.when(~c("_dup")).then(c(name)).forward_fill()
    detail = (
        valid.select("src_rank", "px", "qty", _dup=is_dup)
        .with_columns(_ksrc=kept_value("src_rank"), _kpx=kept_value("px"), _kqty=kept_value("qty"))
        .filter(c("_dup"))
    )
    same = detail.filter(c("src_rank") == c("_ksrc")).height
    conflicts = detail.filter((c("px") != c("_kpx")) | (c("qty") != c("_kqty"))).height
    return valid.filter(~is_dup), (dups, same, dups - same, conflicts)
